//! Durable queues of events: the [`Queues`] trait every backend implements beside [`Store`],
//! and the types it speaks.
//!
//! A queue feeds one function from one source: a topic it subscribes to, a key-value prefix
//! it watches, or its asynchronous HTTP calls ([`QueueKey`]). Entries keep the order they were
//! pushed in (a sequence number shared by all queues, so the copies of one message fanned out
//! to several subscribers share it), and leave the queue when acknowledged, or move to the
//! queue's dead letters. Every change goes through [`Queues::apply`] as one atomic commit, and
//! is made durable with the key-value writes by [`Store::sync`]: what an invocation published,
//! and the acknowledgement of the message it handled, share one durable commit.
//!
//! Key-value writes under a watched prefix push their change event in the same transaction as
//! the write ([`Queues::set_watches`]), so no crash can keep one without the other.
//!
//! A dispatcher takes entries to deliver with [`Queues::claim`]: on a backend that several
//! devices share (Redis), an entry claimed by one device is not handed to another while that
//! device keeps it alive ([`Queues::touch`]); one that goes silent for the backend's
//! [`visibility`](Queues::visibility) timeout loses its entries to the next device that claims.
//! Timer ticks are claimed the same way ([`Queues::claim_tick`]), so that a tick runs on one
//! device of a fleet.
//!
//! [`Store`]: super::Store
//! [`Store::sync`]: super::Store::sync

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::KvError;

/// Dead letters kept per queue; past it, the oldest go.
pub const MAX_DEAD_LETTERS: u64 = 1000;

/// Where a queue's entries come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Messages published to this topic.
    Topic(String),
    /// Changes to keys under `prefix` in `store`, in the namespace the watcher sees.
    Kv { store: String, prefix: String },
    /// HTTP requests made with `Prefer: respond-async`.
    Async,
}

impl fmt::Display for Source {
    /// `topic:orders`, `kv:orders:order/`, `async`: how the admin API names a source.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Topic(topic) => write!(f, "topic:{topic}"),
            Source::Kv { store, prefix } => write!(f, "kv:{store}:{prefix}"),
            Source::Async => f.write_str("async"),
        }
    }
}

impl Source {
    /// Parses what [`Display`](fmt::Display) writes.
    pub fn parse(s: &str) -> Option<Source> {
        if s == "async" {
            return Some(Source::Async);
        }
        if let Some(topic) = s.strip_prefix("topic:") {
            return Some(Source::Topic(topic.to_string()));
        }
        let (store, prefix) = s.strip_prefix("kv:")?.split_once(':')?;
        Some(Source::Kv {
            store: store.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// One queue: the function it feeds and where its entries come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub function: String,
    pub source: Source,
}

impl QueueKey {
    pub fn new(function: &str, source: Source) -> QueueKey {
        QueueKey {
            function: function.to_string(),
            source,
        }
    }

    /// The key's stored form, `function source`: function names have no spaces, so it parses
    /// back unambiguously, and a function's queues sort together.
    pub fn encode(&self) -> String {
        format!("{} {}", self.function, self.source)
    }

    pub fn decode(s: &str) -> Option<QueueKey> {
        let (function, source) = s.split_once(' ')?;
        Some(QueueKey::new(function, Source::parse(source)?))
    }
}

impl fmt::Display for QueueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <- {}", self.function, self.source)
    }
}

/// What an entry carries beside its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A message published to the queue's topic.
    Message,
    /// A key-value change: the key as the watcher names it, and whether it was deleted (the
    /// payload is then empty) or set (the payload is the new value).
    Change { key: Vec<u8>, deleted: bool },
    /// An HTTP call to run later: its argv and environment (the payload is its body), and the
    /// id its result is kept under.
    Call { args: Vec<String>, env: Vec<String> },
}

/// An entry of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the queue; unique within the queue.
    pub seq: u64,
    /// The message's id: the same in every subscriber's copy.
    pub id: String,
    /// Deliveries that failed so far.
    pub attempts: u32,
    /// Not to be delivered before this time (Unix ms): the backoff after a failure.
    pub not_before: u64,
    /// When it was pushed (Unix ms).
    pub pushed_at: u64,
    pub body: Body,
    pub payload: Vec<u8>,
}

/// An entry that used up its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub entry: Entry,
    /// Why its last delivery failed.
    pub error: String,
    /// When it was buried (Unix ms).
    pub dead_at: u64,
}

/// A new entry for a queue.
#[derive(Debug, Clone)]
pub struct Push {
    pub queue: QueueKey,
    pub id: String,
    pub body: Body,
    pub payload: Arc<[u8]>,
}

/// One change to the queues; [`Queues::apply`] commits a batch of them atomically.
#[derive(Debug, Clone)]
pub enum QueueOp {
    /// Adds an entry at the end of its queue.
    Push(Push),
    /// A delivery succeeded: the entry leaves the queue.
    Ack { queue: QueueKey, seq: u64 },
    /// A delivery failed and will be tried again at `not_before`.
    Retry {
        queue: QueueKey,
        seq: u64,
        attempts: u32,
        not_before: u64,
    },
    /// A delivery failed for the last time: the entry moves to the dead letters.
    Bury {
        queue: QueueKey,
        seq: u64,
        attempts: u32,
        error: String,
    },
    /// A dead letter goes back to its place in the queue, with its attempts reset.
    Replay { queue: QueueKey, seq: u64 },
    /// A dead letter is forgotten.
    Purge { queue: QueueKey, seq: u64 },
    /// Drops a queue and its dead letters (its function is gone).
    Drop { queue: QueueKey },
    /// Records an asynchronous call's result (or that it is accepted) under its id.
    SetResult { id: String, result: CallResult },
}

/// How many entries a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting or being delivered.
    pub pending: u64,
    pub dead: u64,
}

/// A key-value prefix a function watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The namespace the watcher sees the store in (see [`super::namespace`]).
    pub namespace: Vec<u8>,
    /// The prefix within that namespace.
    pub prefix: Vec<u8>,
    /// Where its change events go; `queue.function` is the watcher, whose own writes do not
    /// reach it.
    pub queue: QueueKey,
}

/// The kept result of an asynchronous call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallResult {
    pub function: String,
    /// When the call was accepted (Unix ms).
    pub accepted_at: u64,
    /// `None` until it is done.
    pub done: Option<Finished>,
}

/// How an asynchronous call ended: the response the function gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// When (Unix ms).
    pub at: u64,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a dispatcher asks for when it claims entries of its queue.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// Entries it can start now: its free delivery slots.
    pub want: usize,
    /// The queue's concurrency: how many of its first entries may be delivered at once (on a
    /// shared backend, across every device). An entry waiting out its backoff holds its place
    /// in the window, so that a concurrency of 1 delivers in order.
    pub window: usize,
    /// The entries this device is delivering now: never handed out again meanwhile.
    pub held: Vec<u64>,
}

/// The entries a claim got, due now and held by this device until settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    pub entries: Vec<Entry>,
    /// When (Unix ms) a claim may get more without a push: an entry in the window comes out
    /// of its backoff, or a device holding one may have gone silent.
    pub wake_at: Option<u64>,
}

/// How a claim of a timer's tick went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// This device runs it: it is claimed (on a shared backend, leased until it is finished
    /// or the lease runs out; claiming it again renews the lease).
    Run,
    /// It ran already, or a later tick did.
    Done,
    /// Another device is running a tick of this timer. `older`: an earlier tick, still
    /// running, so this one is skipped. `retry_at` (Unix ms): when that device's lease runs
    /// out if it goes silent; a claim then may take the tick over.
    Busy { older: bool, retry_at: u64 },
}

/// The durable queues of a backend, and the small records the triggers keep beside them.
pub trait Queues: Send + Sync + 'static {
    /// The watches in force from now on: a write under one pushes a change event to its queue
    /// in the same transaction, unless the writer is the watcher itself. A write that would
    /// push to a queue already holding `cap` entries fails with [`KvError::QueueFull`].
    fn set_watches(&self, watches: Vec<Watch>, cap: u64);

    /// Commits `ops` atomically, without waiting for the disk: `Store::sync` does that.
    fn apply(&self, ops: Vec<QueueOp>) -> super::Pending<()>;

    /// The first `n` entries of `queue`, in order, delivered or not. May block: not for an
    /// executor thread.
    fn peek(&self, queue: &QueueKey, n: usize) -> Result<Vec<Entry>, KvError>;

    /// Up to `claim.want` entries of `queue` that are due, in the window and not held
    /// elsewhere, now held by this device; settle each with [`Queues::apply`].
    fn claim(&self, queue: &QueueKey, claim: Claim) -> super::Pending<Claimed>;

    /// Says that this device is still delivering `seqs` of `queue`, so that no other device
    /// takes them over; a device calls it more often than [`Queues::visibility`].
    fn touch(&self, _queue: &QueueKey, _seqs: &[u64]) -> super::Pending<()> {
        super::Pending::ready(Ok(()))
    }

    /// How long entries and timer ticks claimed by a device that went silent stay claimed:
    /// `None` where one device owns the backend.
    fn visibility(&self) -> Option<Duration> {
        None
    }

    /// Fires when another device may have put entries in a queue this device has no
    /// dispatcher for (a function's asynchronous calls); `None` where one device owns the
    /// backend.
    fn activity(&self) -> Option<Arc<event_listener::Event>> {
        None
    }

    /// What `queue` holds now.
    fn counts(&self, queue: &QueueKey) -> QueueCounts;

    /// Every queue that holds anything.
    fn queues(&self) -> Vec<(QueueKey, QueueCounts)>;

    /// Up to `limit` dead letters of `queue`, oldest first.
    fn dead_letters(&self, queue: &QueueKey, limit: usize) -> Result<Vec<DeadLetter>, KvError>;

    /// A signal that fires after every commit that pushes to `queue`.
    fn signal(&self, queue: &QueueKey) -> Arc<event_listener::Event>;

    fn result(&self, id: &str) -> Result<Option<CallResult>, KvError>;

    /// Forgets the results of calls done before `before` (Unix ms), and the oldest done ones
    /// beyond the newest `keep`. Returns how many went.
    fn expire_results(&self, before: u64, keep: usize) -> Result<usize, KvError>;

    /// The last tick a timer ran for (Unix ms), if it ever ran. `fleet`: the timer runs once
    /// per tick across the devices that share the backend, rather than on each.
    fn timer_tick(&self, timer: &str, fleet: bool) -> Result<Option<u64>, KvError>;

    /// Claims `tick` of `timer` for this device (see [`Tick`]).
    fn claim_tick(&self, timer: &str, tick: u64, fleet: bool) -> super::Pending<Tick>;

    /// Says that the run of `tick` claimed by this device is over.
    fn finish_tick(&self, _timer: &str, _tick: u64, _fleet: bool) -> super::Pending<()> {
        super::Pending::ready(Ok(()))
    }
}
