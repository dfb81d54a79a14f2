//! The topic table: which queues each topic feeds, as the route table says which function
//! serves a path, and the admission of published messages against the topics' depth caps.
//!
//! A message is copied into the queue of every function subscribed to its topic when it is
//! committed (fan-out on write), so each subscriber has its own order, retries and dead
//! letters. A topic nobody subscribes to keeps nothing: its messages are counted and dropped,
//! as with SNS or Google Pub/Sub.
//!
//! The depth cap applies to each subscriber's queue: a publish is refused while any
//! subscriber of the topic has `cap` messages waiting, counting the messages that running
//! invocations have published and not yet committed (each holds a [`Reservation`]), so the cap
//! is exact however many publishers race.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::engine::{Admit, Hold, Published, Refused};
use crate::store::queues::{Body, Push, QueueKey, QueueOp, Source};
use crate::store::{Backend, unix_ms};

/// Messages a subscriber's queue holds at most unless configured: past it, publishing to the
/// topic fails with `QUEUE_FULL`.
pub const DEFAULT_DEPTH: u64 = 10_000;

/// The topics and their subscribers' queues.
pub struct Topics {
    subscribers: RwLock<Arc<HashMap<String, Vec<QueueKey>>>>,
    /// Messages admitted and not yet committed or dropped, by queue.
    reserved: Mutex<HashMap<QueueKey, u64>>,
    backend: Arc<dyn Backend>,
    cap: u64,
    /// Messages published to a topic with no subscriber.
    pub unrouted: AtomicU64,
    /// Makes message ids unique across restarts, beside the time.
    nonce: u32,
    next_id: AtomicU64,
}

/// Room held in some queues for a message not yet committed; given back when dropped.
pub struct Reservation {
    topics: Arc<Topics>,
    queues: Vec<QueueKey>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.topics.reserved();
        for queue in &self.queues {
            if let Some(n) = reserved.get_mut(queue) {
                *n -= 1;
                if *n == 0 {
                    reserved.remove(queue);
                }
            }
        }
    }
}

impl Topics {
    pub fn new(backend: Arc<dyn Backend>, cap: u64) -> Arc<Topics> {
        let mut nonce = [0u8; 4];
        // Without randomness the ids are still unique within a run.
        let _ = getrandom::fill(&mut nonce);
        Arc::new(Topics {
            subscribers: RwLock::default(),
            reserved: Mutex::default(),
            backend,
            cap: cap.max(1),
            unrouted: AtomicU64::new(0),
            nonce: u32::from_le_bytes(nonce),
            next_id: AtomicU64::new(0),
        })
    }

    /// The depth cap of each subscriber's queue.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    fn reserved(&self) -> MutexGuard<'_, HashMap<QueueKey, u64>> {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The subscriptions in force from now on: (function, topic) pairs.
    pub fn set_subscriptions<'a>(&self, subscriptions: impl Iterator<Item = (&'a str, &'a str)>) {
        let mut table: HashMap<String, Vec<QueueKey>> = HashMap::new();
        for (function, topic) in subscriptions {
            let queue = QueueKey::new(function, Source::Topic(topic.to_string()));
            table.entry(topic.to_string()).or_default().push(queue);
        }
        *self.subscribers.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// The queues `topic` feeds now.
    pub fn subscribers(&self, topic: &str) -> Vec<QueueKey> {
        let table = self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        table.get(topic).cloned().unwrap_or_default()
    }

    /// Every topic with a subscriber, by name.
    pub fn all(&self) -> Vec<(String, Vec<QueueKey>)> {
        let table = self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut all: Vec<_> = table.iter().map(|(t, q)| (t.clone(), q.clone())).collect();
        all.sort();
        all
    }

    /// Holds room for one message in every queue `topic` feeds, or refuses if one is full.
    pub fn reserve(self: &Arc<Self>, topic: &str) -> Result<Reservation, Refused> {
        let queues = self.subscribers(topic);
        let mut reserved = self.reserved();
        for queue in &queues {
            let waiting = self.backend.counts(queue).pending + reserved.get(queue).unwrap_or(&0);
            if waiting >= self.cap {
                return Err(Refused::QueueFull);
            }
        }
        for queue in &queues {
            *reserved.entry(queue.clone()).or_default() += 1;
        }
        drop(reserved);
        Ok(Reservation {
            topics: self.clone(),
            queues,
        })
    }

    /// A new message id: the time, this process's nonce and a counter, in hex.
    pub fn message_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Relaxed);
        format!("{:x}-{:08x}{n:x}", unix_ms(), self.nonce)
    }

    /// The pushes that deliver `messages` to the subscribers their topics have now.
    pub fn pushes(&self, messages: &[Published]) -> Vec<QueueOp> {
        let mut ops = Vec::new();
        for message in messages {
            let queues = self.subscribers(&message.topic);
            if queues.is_empty() {
                self.unrouted.fetch_add(1, Relaxed);
                continue;
            }
            let id = self.message_id();
            let payload: Arc<[u8]> = message.payload.as_slice().into();
            for queue in queues {
                ops.push(QueueOp::Push(Push {
                    queue,
                    id: id.clone(),
                    body: Body::Message,
                    payload: payload.clone(),
                }));
            }
        }
        ops
    }
}

/// What one function may publish to: the topics its configuration lists.
pub struct Allowed {
    pub topics: Arc<Topics>,
    pub list: Vec<String>,
}

impl Admit for Allowed {
    fn admit(&self, topic: &str, _len: usize) -> Result<Hold, Refused> {
        if !self.list.iter().any(|t| t == topic) {
            return Err(Refused::NotAllowed);
        }
        Ok(Box::new(self.topics.reserve(topic)?))
    }
}
