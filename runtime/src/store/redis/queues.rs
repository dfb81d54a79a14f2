//! The Redis backend's queues: the queues of events a fleet shares, each a Redis Stream with a
//! consumer group named after its function, the devices its consumers (`keys.rs` says where
//! everything is, `queue_scripts.rs` how each change is made).
//!
//! One stream per queue (per subscriber of a topic, per watcher, per function's asynchronous
//! calls) rather than one per topic with a group per subscriber: a message is copied to each
//! subscriber's stream when it is published, in the script that commits the publishing
//! invocation, so that each subscriber's entries can be acknowledged, retried, buried and
//! counted on their own (`XLEN` is the depth; no trimming waits for the slowest subscriber).
//!
//! **Claims.** A dispatcher claims entries ([`Queues::claim`]) and the device holds them in
//! its consumer's pending list while it delivers them. A device that goes silent (a `kill -9`,
//! a power cut, a network gone) for the visibility timeout ([`RedisOptions::visibility`],
//! 30 s by default) loses them to the next device that claims; a live device resets the
//! timeout every third of it ([`Queues::touch`]), however long its function runs. A device
//! that restarts under the same name takes its own entries back at once.
//!
//! **Counts** are read by the executor threads without waiting (a publish is admitted against
//! them while the guest runs), so they are kept here: each commit's reply carries the counts
//! of the queues it touched, and a thread reads every queue's counts each second
//! ([`REFRESH`]). The cap itself is checked again, exactly, by the script that commits the
//! pushes: a commit that would take a queue past it changes nothing and fails with
//! [`KvError::QueueFull`].
//!
//! **Signals.** A commit that pushes wakes this device's dispatcher of the queue at once; the
//! other devices' dispatchers are woken by the counts thread, within a second.
//!
//! [`RedisOptions::visibility`]: super::RedisOptions::visibility

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use event_listener::Event;
use redis::Value;

use super::client::Client;
use super::queue_replies::{dead_letter, entries, queue_name, rows, text};
use super::queue_scripts::{self, Name};
use super::{RedisStore, bytes, integer, unexpected};
use crate::store::codec;
use crate::store::queues::{
    Body, CallResult, Claim, Claimed, DeadLetter, Entry, MAX_DEAD_LETTERS, QueueCounts, QueueKey,
    QueueOp, Queues, Tick, Watch,
};
use crate::store::{KvError, Pending, unix_ms};

/// How often the counts of every queue are read from Redis.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The most entries a read asks Redis for: "all of them" (a queue holds at most its depth cap;
/// and it fits the 32-bit ARM builds' `usize`).
const MOST: usize = 1 << 30;

/// What the backend keeps in memory about the fleet's queues.
pub(super) struct State {
    /// This device: its name as the queues' consumer and the timers' lease holder.
    device: String,
    visibility: Duration,
    watches: RwLock<Arc<Watches>>,
    counts: RwLock<HashMap<QueueKey, QueueCounts>>,
    signals: Mutex<HashMap<QueueKey, Arc<Event>>>,
    activity: Arc<Event>,
    /// Makes the ids of change events unique across devices, beside the time.
    nonce: u32,
    next_id: AtomicU64,
}

/// The watches in force, and the depth cap of every queue.
struct Watches {
    list: Vec<Watch>,
    cap: u64,
}

/// The watchers of one write (see [`State::watchers`]).
pub(super) struct Watchers {
    cap: u64,
    pub(super) queues: Vec<QueueKey>,
    /// Three for each watcher: its queue's name, its consumer group, its event's head.
    args: Vec<Vec<u8>>,
}

impl Watchers {
    /// Adds what a write's script takes after its own arguments (`scripts.rs`, `WATCH`).
    pub(super) fn add_to(&self, cmd: &mut redis::Cmd) {
        cmd.arg(self.cap);
        for arg in &self.args {
            cmd.arg(arg.as_slice());
        }
    }
}

impl State {
    pub(super) fn new(device: String, visibility: Duration) -> State {
        let mut nonce = [0u8; 4];
        // Without randomness the ids are still unique on this device.
        let _ = getrandom::fill(&mut nonce);
        State {
            device,
            visibility,
            watches: RwLock::new(Arc::new(Watches {
                list: Vec::new(),
                cap: crate::topics::DEFAULT_DEPTH,
            })),
            counts: RwLock::default(),
            signals: Mutex::default(),
            activity: Arc::new(Event::new()),
            nonce: u32::from_le_bytes(nonce),
            next_id: AtomicU64::new(0),
        }
    }

    fn watches(&self) -> Arc<Watches> {
        self.watches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The watchers a write of `key` by `by` reaches (never the writer's own), and what the
    /// write's script is told of them: the change event each gets, but for its payload (the
    /// value as the script leaves it; empty for a delete).
    pub(super) fn watchers(&self, key: &[u8], by: Option<&str>, deleted: bool) -> Watchers {
        let watches = self.watches();
        let mut watchers = Watchers {
            cap: watches.cap,
            queues: Vec::new(),
            args: Vec::new(),
        };
        for watch in &watches.list {
            let Some(rest) = key.strip_prefix(watch.namespace.as_slice()) else {
                continue;
            };
            if !rest.starts_with(&watch.prefix) || by == Some(watch.queue.function.as_str()) {
                continue;
            }
            let n = self.next_id.fetch_add(1, Relaxed);
            let now = unix_ms();
            let event = Entry {
                seq: 0,
                id: format!("{now:x}-{:08x}{n:x}", self.nonce),
                attempts: 0,
                not_before: 0,
                pushed_at: now,
                body: Body::Change {
                    key: rest.to_vec(),
                    deleted,
                },
                payload: Vec::new(),
            };
            watchers.args.push(watch.queue.encode().into_bytes());
            watchers
                .args
                .push(watch.queue.function.clone().into_bytes());
            watchers.args.push(codec::entry_head(&event));
            watchers.queues.push(watch.queue.clone());
        }
        watchers
    }

    /// Counts one more entry in each of `queues`, pushed by a write of this device, and wakes
    /// their dispatchers.
    pub(super) fn pushed(&self, queues: &[QueueKey]) {
        if queues.is_empty() {
            return;
        }
        {
            let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
            for queue in queues {
                counts.entry(queue.clone()).or_default().pending += 1;
            }
        }
        queues.iter().for_each(|queue| self.wake(queue));
    }

    fn signal(&self, queue: &QueueKey) -> Arc<Event> {
        let mut signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        signals.entry(queue.clone()).or_default().clone()
    }

    /// Wakes the dispatcher of `queue` on this device, if it has one.
    fn wake(&self, queue: &QueueKey) {
        let signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(signal) = signals.get(queue) {
            signal.notify(usize::MAX);
        }
    }

    /// Takes in a commit's reply: the counts of the queues it touched, and who to wake.
    fn applied(&self, value: Value) -> Result<(), KvError> {
        let mut pushed = Vec::new();
        {
            let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
            for row in rows(value, 4)? {
                let [name, pending, dead, was_pushed] =
                    <[Value; 4]>::try_from(row).map_err(|row| unexpected(&Value::Array(row)))?;
                let Some(queue) = queue_name(name)? else {
                    continue;
                };
                let count = QueueCounts {
                    pending: integer(pending)?.max(0) as u64,
                    dead: integer(dead)?.max(0) as u64,
                };
                if integer(was_pushed)? == 1 {
                    pushed.push(queue.clone());
                }
                if count == QueueCounts::default() {
                    counts.remove(&queue);
                } else {
                    counts.insert(queue, count);
                }
            }
        }
        pushed.iter().for_each(|queue| self.wake(queue));
        Ok(())
    }

    /// Takes in every queue's counts, read from Redis. A queue with entries wakes its
    /// dispatcher here (another device may have pushed them); one that had none wakes the
    /// triggers, which may need to start a dispatcher for it.
    fn refreshed(&self, value: Value) -> Result<(), KvError> {
        let mut fresh = HashMap::new();
        for row in rows(value, 3)? {
            let [name, pending, dead] =
                <[Value; 3]>::try_from(row).map_err(|row| unexpected(&Value::Array(row)))?;
            let Some(queue) = queue_name(name)? else {
                continue;
            };
            let count = QueueCounts {
                pending: integer(pending)?.max(0) as u64,
                dead: integer(dead)?.max(0) as u64,
            };
            if count != QueueCounts::default() {
                fresh.insert(queue, count);
            }
        }
        let mut new_work = false;
        {
            let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
            for (queue, count) in &fresh {
                let before = counts.get(queue).map_or(0, |c| c.pending);
                new_work |= count.pending > 0 && before == 0;
            }
            *counts = fresh.clone();
        }
        for (queue, count) in &fresh {
            if count.pending > 0 {
                self.wake(queue);
            }
        }
        if new_work {
            self.activity.notify(usize::MAX);
        }
        Ok(())
    }

    /// The name a timer's record and lease go under: a device's own timer names the device.
    fn timer(&self, timer: &str, fleet: bool) -> String {
        match fleet {
            true => timer.to_string(),
            false => format!("{timer} @{}", self.device),
        }
    }
}

impl RedisStore {
    fn script(&self, name: Name) -> redis::Cmd {
        queue_scripts::call(name, self.keys.prefix())
    }
}

impl Queues for RedisStore {
    fn set_watches(&self, watches: Vec<Watch>, cap: u64) {
        let watches = Arc::new(Watches {
            list: watches,
            cap: cap.max(1),
        });
        *self
            .queues
            .watches
            .write()
            .unwrap_or_else(|e| e.into_inner()) = watches;
    }

    fn apply(&self, ops: Vec<QueueOp>) -> Pending<()> {
        if ops.is_empty() {
            return Pending::ready(Ok(()));
        }
        let mut cmd = self.script(Name::Apply);
        cmd.arg(self.queues.watches().cap)
            .arg(&self.queues.device)
            .arg(MAX_DEAD_LETTERS);
        let now = unix_ms();
        for op in ops {
            match op {
                QueueOp::Push(push) => {
                    let entry = Entry {
                        seq: 0,
                        id: push.id,
                        attempts: 0,
                        not_before: 0,
                        pushed_at: now,
                        body: push.body,
                        payload: push.payload.to_vec(),
                    };
                    cmd.arg("push")
                        .arg(push.queue.encode())
                        .arg(&push.queue.function)
                        .arg(codec::entry(&entry));
                }
                QueueOp::Ack { queue, seq } => {
                    cmd.arg("ack")
                        .arg(queue.encode())
                        .arg(&queue.function)
                        .arg(seq);
                }
                QueueOp::Retry {
                    queue,
                    seq,
                    attempts,
                    not_before,
                } => {
                    // As a delay: Redis's clock decides when it is due.
                    cmd.arg("retry")
                        .arg(queue.encode())
                        .arg(&queue.function)
                        .arg(seq)
                        .arg(attempts)
                        .arg(not_before.saturating_sub(now));
                }
                QueueOp::Bury {
                    queue,
                    seq,
                    attempts,
                    error,
                } => {
                    cmd.arg("bury")
                        .arg(queue.encode())
                        .arg(&queue.function)
                        .arg(seq)
                        .arg(attempts)
                        .arg(error);
                }
                QueueOp::Replay { queue, seq } => {
                    cmd.arg("replay")
                        .arg(queue.encode())
                        .arg(&queue.function)
                        .arg(seq);
                }
                QueueOp::Purge { queue, seq } => {
                    cmd.arg("purge").arg(queue.encode()).arg(seq);
                }
                QueueOp::Drop { queue } => {
                    cmd.arg("drop").arg(queue.encode());
                }
                QueueOp::SetResult { id, result } => {
                    let done_at = result.done.as_ref().map(|d| d.at.to_string());
                    cmd.arg("result")
                        .arg(id)
                        .arg(codec::call_result(&result))
                        .arg(done_at.unwrap_or_default());
                }
            }
        }
        let state = self.queues.clone();
        self.client
            .ask(Some(cmd), move |value| state.applied(value))
    }

    fn peek(&self, queue: &QueueKey, n: usize) -> Result<Vec<Entry>, KvError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = self.script(Name::Peek);
        cmd.arg(queue.encode()).arg(n.min(MOST));
        self.client.ask(Some(cmd), entries).wait()
    }

    fn claim(&self, queue: &QueueKey, claim: Claim) -> Pending<Claimed> {
        if claim.want == 0 {
            return Pending::ready(Ok(Claimed::default()));
        }
        let mut cmd = self.script(Name::Claim);
        cmd.arg(queue.encode())
            .arg(&queue.function)
            .arg(&self.queues.device)
            .arg(claim.want)
            .arg(claim.window)
            .arg(self.queues.visibility.as_millis() as u64);
        for seq in &claim.held {
            cmd.arg(*seq);
        }
        self.client.ask(Some(cmd), |value| {
            let [list, wake] = match value {
                Value::Array(parts) => <[Value; 2]>::try_from(parts)
                    .map_err(|parts| unexpected(&Value::Array(parts)))?,
                other => return Err(unexpected(&other)),
            };
            let mut entries = entries(list)?;
            // Due now, by Redis's clock; this device's may differ.
            entries.iter_mut().for_each(|e| e.not_before = 0);
            let wake = integer(wake)?;
            Ok(Claimed {
                entries,
                wake_at: (wake >= 0).then(|| unix_ms() + wake as u64),
            })
        })
    }

    fn touch(&self, queue: &QueueKey, seqs: &[u64]) -> Pending<()> {
        if seqs.is_empty() {
            return Pending::ready(Ok(()));
        }
        let mut cmd = self.script(Name::Touch);
        cmd.arg(queue.encode())
            .arg(&queue.function)
            .arg(&self.queues.device);
        for seq in seqs {
            cmd.arg(*seq);
        }
        self.client.ask(Some(cmd), |value| integer(value).map(drop))
    }

    fn visibility(&self) -> Option<Duration> {
        Some(self.queues.visibility)
    }

    fn activity(&self) -> Option<Arc<Event>> {
        Some(self.queues.activity.clone())
    }

    fn counts(&self, queue: &QueueKey) -> QueueCounts {
        let counts = self.queues.counts.read().unwrap_or_else(|e| e.into_inner());
        counts.get(queue).copied().unwrap_or_default()
    }

    fn queues(&self) -> Vec<(QueueKey, QueueCounts)> {
        let counts = self.queues.counts.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = counts.iter().map(|(q, c)| (q.clone(), *c)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    fn dead_letters(&self, queue: &QueueKey, limit: usize) -> Result<Vec<DeadLetter>, KvError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = self.script(Name::DeadLetters);
        cmd.arg(queue.encode()).arg(limit.min(MOST) - 1);
        let reply = self.client.ask(Some(cmd), |value| match value {
            Value::Nil => Ok(Vec::new()),
            value => rows(value, 3)?.into_iter().map(dead_letter).collect(),
        });
        reply.wait()
    }

    fn signal(&self, queue: &QueueKey) -> Arc<Event> {
        self.queues.signal(queue)
    }

    fn result(&self, id: &str) -> Result<Option<CallResult>, KvError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg([self.keys.prefix(), b"results"].concat()).arg(id);
        let stored = self.client.ask(Some(cmd), bytes).wait()?;
        Ok(stored.and_then(|bytes| codec::decode_call_result(&bytes)))
    }

    fn expire_results(&self, before: u64, keep: usize) -> Result<usize, KvError> {
        let mut cmd = self.script(Name::ExpireResults);
        cmd.arg(before).arg(keep);
        let gone = self.client.ask(Some(cmd), integer).wait()?;
        Ok(gone.max(0) as usize)
    }

    fn timer_tick(&self, timer: &str, fleet: bool) -> Result<Option<u64>, KvError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg([self.keys.prefix(), b"timers"].concat())
            .arg(self.queues.timer(timer, fleet));
        let tick = self.client.ask(Some(cmd), bytes).wait()?;
        Ok(tick.and_then(|t| std::str::from_utf8(&t).ok()?.parse().ok()))
    }

    fn claim_tick(&self, timer: &str, tick: u64, fleet: bool) -> Pending<Tick> {
        let mut cmd = self.script(Name::ClaimTick);
        cmd.arg(self.queues.timer(timer, fleet))
            .arg(tick)
            .arg(&self.queues.device)
            .arg(self.queues.visibility.as_millis() as u64)
            .arg(if fleet { "1" } else { "0" });
        self.client.ask(Some(cmd), |value| {
            let Value::Array(parts) = value else {
                return Err(unexpected(&value));
            };
            let mut parts = parts.into_iter();
            let what = parts.next().map(text).transpose()?;
            match what.as_deref() {
                Some("run") => Ok(Tick::Run),
                Some("done") => Ok(Tick::Done),
                Some("busy") => {
                    let older = parts.next().map(integer).transpose()? == Some(1);
                    let left = parts.next().map(integer).transpose()?.unwrap_or(0);
                    Ok(Tick::Busy {
                        older,
                        retry_at: unix_ms() + left.max(0) as u64,
                    })
                }
                _ => Err(KvError::Failed(format!(
                    "unexpected reply to a tick's claim: {what:?}"
                ))),
            }
        })
    }

    fn finish_tick(&self, timer: &str, tick: u64, fleet: bool) -> Pending<()> {
        let mut cmd = self.script(Name::FinishTick);
        cmd.arg(self.queues.timer(timer, fleet))
            .arg(tick)
            .arg(&self.queues.device);
        self.client.ask(Some(cmd), |value| integer(value).map(drop))
    }
}

/// The thread that reads every queue's counts each [`REFRESH`]; stopped and joined when
/// dropped.
pub(super) struct Refresher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Refresher {
    pub(super) fn start(client: Arc<Client>, state: Arc<State>, prefix: Vec<u8>) -> Refresher {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = std::thread::Builder::new()
            .name("wisp-redis-counts".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let (lock, wake) = &*stop;
                    loop {
                        let stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
                        let (stopped, _) = wake
                            .wait_timeout_while(stopped, REFRESH, |stopped| !*stopped)
                            .unwrap_or_else(|e| e.into_inner());
                        if *stopped {
                            return;
                        }
                        drop(stopped);
                        let state = state.clone();
                        let cmd = queue_scripts::call(Name::Counts, &prefix);
                        // Taken in as the reply comes, in turn with the commits' replies, so
                        // that an older count never overwrites a newer one. Redis away: the
                        // counts stay as they were.
                        let _ = client
                            .ask(Some(cmd), move |value| match value {
                                Value::Nil => state.refreshed(Value::Array(Vec::new())),
                                value => state.refreshed(value),
                            })
                            .wait();
                    }
                }
            })
            .expect("spawn the Redis counts thread");
        Refresher {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
