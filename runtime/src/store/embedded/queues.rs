//! The embedded backend's queues: tables beside the key-value data in the same database, so
//! that a watched write and its change event share a transaction, and an invocation's
//! published messages and the acknowledgement of the message it handled share a commit.
//!
//! Tables: `queue` and `dead`, keyed by queue and sequence number ([`entry_key`]), hold the
//! entries and the dead letters ([`codec`]); `results` (id) and `results_by_time` (finished,
//! id) the results of asynchronous calls; `timers` the last tick each timer ran for. The counts
//! of every queue are kept in memory, loaded at open by one scan, so that admission checks never
//! read the disk.
//!
//! Every table has bytes or a string for its key and bytes for its value, as the key-value and
//! registry tables do: redb's code is generic over the key and value types, and each new pair
//! would add its own copy of the B-tree (tens of KiB of binary each).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, RwLock};

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::{Counts, Delta, Embedded, Signals, Tx, failed};
use crate::store::codec;
use crate::store::queues::{
    Body, CallResult, Claim, Claimed, DeadLetter, Entry, MAX_DEAD_LETTERS, QueueCounts, QueueKey,
    QueueOp, Queues, Tick, Watch,
};
use crate::store::{KvError, Pending, unix_ms};

type Bytes = &'static [u8];

const QUEUE: TableDefinition<Bytes, Bytes> = TableDefinition::new("queue");
const DEAD: TableDefinition<Bytes, Bytes> = TableDefinition::new("dead");
const RESULTS: TableDefinition<&str, Bytes> = TableDefinition::new("results");
/// Key: when the call finished (u64, big-endian), then its id; no value.
const RESULTS_BY_TIME: TableDefinition<Bytes, Bytes> = TableDefinition::new("results_by_time");
/// Value: the tick (u64, little-endian).
const TIMERS: TableDefinition<&str, Bytes> = TableDefinition::new("timers");

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), KvError> {
    txn.open_table(QUEUE).map_err(failed)?;
    txn.open_table(DEAD).map_err(failed)?;
    txn.open_table(RESULTS).map_err(failed)?;
    txn.open_table(RESULTS_BY_TIME).map_err(failed)?;
    txn.open_table(TIMERS).map_err(failed)?;
    Ok(())
}

/// What the backend keeps in memory about its queues.
pub(super) struct State {
    watches: RwLock<Arc<Watches>>,
    counts: Counts,
    signals: Signals,
    /// The next sequence number: one counter for all queues, so a message's copies and the
    /// entries of one queue all sort in push order.
    next_seq: AtomicU64,
}

#[derive(Default)]
struct Watches {
    list: Vec<Watch>,
    cap: u64,
}

impl State {
    /// Counts what the queues hold, and finds where sequence numbers go on.
    pub(super) fn load(db: &Database) -> Result<State, KvError> {
        let txn = db.begin_read().map_err(failed)?;
        let mut counts: HashMap<QueueKey, QueueCounts> = HashMap::new();
        let mut last_seq = 0;
        for (definition, dead) in [(QUEUE, false), (DEAD, true)] {
            let table = txn.open_table(definition).map_err(failed)?;
            for item in table.iter().map_err(failed)? {
                let (key, _) = item.map_err(failed)?;
                let Some((queue, seq)) = split_key(key.value()) else {
                    continue;
                };
                last_seq = last_seq.max(seq);
                let Some(queue) = QueueKey::decode(queue) else {
                    continue;
                };
                let count = counts.entry(queue).or_default();
                if dead {
                    count.dead += 1;
                } else {
                    count.pending += 1;
                }
            }
        }
        Ok(State {
            watches: RwLock::default(),
            counts: RwLock::new(counts),
            signals: Signals::default(),
            next_seq: AtomicU64::new(last_seq + 1),
        })
    }

    fn watches(&self) -> Arc<Watches> {
        self.watches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count(&self, queue: &QueueKey) -> QueueCounts {
        let counts = self.counts.read().unwrap_or_else(|e| e.into_inner());
        counts.get(queue).copied().unwrap_or_default()
    }

    /// Pushes the change of `key` (to `value`, or deleted) to every watcher of it but `by`; or,
    /// if one of them is full, pushes nothing and refuses.
    pub(super) fn changed(
        &self,
        tx: &mut Tx,
        key: &[u8],
        value: Option<&[u8]>,
        by: Option<&str>,
    ) -> Result<(), KvError> {
        let watches = self.watches();
        let watchers: Vec<(&Watch, &[u8])> = watches
            .list
            .iter()
            .filter_map(|watch| {
                let rest = key.strip_prefix(watch.namespace.as_slice())?;
                let mine = by == Some(watch.queue.function.as_str());
                (rest.starts_with(&watch.prefix) && !mine).then_some((watch, rest))
            })
            .collect();
        for (watch, _) in &watchers {
            let queued = self.count(&watch.queue).pending as i64
                + tx.delta.get(&watch.queue).map_or(0, |d| d.pending);
            if queued >= watches.cap as i64 {
                return Err(KvError::QueueFull);
            }
        }
        for (watch, rest) in watchers {
            let body = Body::Change {
                key: rest.to_vec(),
                deleted: value.is_none(),
            };
            self.push(tx, &watch.queue, None, body, value.unwrap_or_default())?;
        }
        Ok(())
    }

    /// Adds an entry at the end of `queue`; its id is `id`, or made from its time and place.
    fn push(
        &self,
        tx: &mut Tx,
        queue: &QueueKey,
        id: Option<&str>,
        body: Body,
        payload: &[u8],
    ) -> Result<(), KvError> {
        let seq = self.next_seq.fetch_add(1, SeqCst);
        let now = unix_ms();
        let entry = Entry {
            seq,
            id: id.map_or_else(|| format!("{now:x}-{seq:x}"), str::to_string),
            attempts: 0,
            not_before: 0,
            pushed_at: now,
            body,
            payload: payload.to_vec(),
        };
        let key = entry_key(&queue.encode(), seq);
        tx.queue()?
            .insert(key.as_slice(), codec::entry(&entry).as_slice())
            .map_err(failed)?;
        let delta = tx.delta.entry(queue.clone()).or_default();
        delta.pending += 1;
        delta.pushed = true;
        Ok(())
    }

    /// Applies a committed transaction's changes to the counts, and wakes the queues' readers.
    pub(super) fn committed(&self, delta: HashMap<QueueKey, Delta>) {
        if delta.is_empty() {
            return;
        }
        let mut pushed = Vec::new();
        {
            let mut counts = self.counts.write().unwrap_or_else(|e| e.into_inner());
            for (queue, d) in delta {
                let count = counts.entry(queue.clone()).or_default();
                count.pending = count.pending.saturating_add_signed(d.pending);
                count.dead = count.dead.saturating_add_signed(d.dead);
                if *count == QueueCounts::default() {
                    counts.remove(&queue);
                }
                if d.pushed {
                    pushed.push(queue);
                }
            }
        }
        let signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        for queue in pushed {
            if let Some(signal) = signals.get(&queue) {
                signal.notify(usize::MAX);
            }
        }
    }
}

impl<'t> Tx<'t> {
    fn queue(&mut self) -> Result<&mut redb::Table<'t, Bytes, Bytes>, KvError> {
        if self.queue.is_none() {
            self.queue = Some(self.txn.open_table(QUEUE).map_err(failed)?);
        }
        Ok(self.queue.as_mut().expect("just opened"))
    }
}

/// The key of entry `seq` of the queue named `name`: the name's length (u16, big-endian),
/// so that no queue's keys fall among another's, the name, then `seq` big-endian, so that a
/// queue's entries sort in order.
fn entry_key(name: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len() + 8);
    key.extend_from_slice(&(name.len() as u16).to_be_bytes());
    key.extend_from_slice(name.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The queue name and sequence number of an entry's key.
fn split_key(key: &[u8]) -> Option<(&str, u64)> {
    let len = usize::from(u16::from_be_bytes(key.get(..2)?.try_into().ok()?));
    let name = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let seq = u64::from_be_bytes(key.get(2 + len..)?.try_into().ok()?);
    Some((name, seq))
}

/// The first and last possible keys of the entries of the queue named `name`.
fn bounds(name: &str) -> (Vec<u8>, Vec<u8>) {
    (entry_key(name, 0), entry_key(name, u64::MAX))
}

/// A call result's key in `results_by_time`.
fn by_time(at: u64, id: &str) -> Vec<u8> {
    [&at.to_be_bytes()[..], id.as_bytes()].concat()
}

impl State {
    fn apply_one(
        &self,
        tx: &mut Tx,
        dead: &mut redb::Table<Bytes, Bytes>,
        op: QueueOp,
    ) -> Result<(), KvError> {
        let state = self;
        match op {
            QueueOp::Push(push) => {
                state.push(tx, &push.queue, Some(&push.id), push.body, &push.payload)?;
            }
            QueueOp::Ack { queue, seq } => {
                let name = queue.encode();
                if tx
                    .queue()?
                    .remove(entry_key(&name, seq).as_slice())
                    .map_err(failed)?
                    .is_some()
                {
                    tx.delta.entry(queue).or_default().pending -= 1;
                }
            }
            QueueOp::Retry {
                queue,
                seq,
                attempts,
                not_before,
            } => {
                let name = queue.encode();
                let table = tx.queue()?;
                let stored = table
                    .get(entry_key(&name, seq).as_slice())
                    .map_err(failed)?;
                if let Some(mut bytes) = stored.map(|v| v.value().to_vec()) {
                    codec::set_retry(&mut bytes, attempts, not_before);
                    table
                        .insert(entry_key(&name, seq).as_slice(), bytes.as_slice())
                        .map_err(failed)?;
                }
            }
            QueueOp::Bury {
                queue,
                seq,
                attempts,
                error,
            } => {
                let name = queue.encode();
                let removed = tx
                    .queue()?
                    .remove(entry_key(&name, seq).as_slice())
                    .map_err(failed)?;
                let Some(entry) = removed.and_then(|v| codec::decode_entry(v.value(), seq)) else {
                    return Ok(());
                };
                let letter = DeadLetter {
                    entry: Entry { attempts, ..entry },
                    error,
                    dead_at: unix_ms(),
                };
                dead.insert(
                    entry_key(&name, seq).as_slice(),
                    codec::dead_letter(&letter).as_slice(),
                )
                .map_err(failed)?;
                let buried = state.count(&queue).dead as i64
                    + 1
                    + tx.delta.get(&queue).map_or(0, |d| d.dead);
                let delta = tx.delta.entry(queue).or_default();
                delta.pending -= 1;
                delta.dead += 1;
                // Past the cap, the oldest dead letters go.
                let mut excess = buried - MAX_DEAD_LETTERS as i64;
                while excess > 0 {
                    let (first, last) = bounds(&name);
                    let oldest = match dead.range(first.as_slice()..=last.as_slice()) {
                        Ok(mut range) => match range.next() {
                            Some(item) => item.map_err(failed)?.0.value().to_vec(),
                            None => break,
                        },
                        Err(e) => return Err(failed(e)),
                    };
                    dead.remove(oldest.as_slice()).map_err(failed)?;
                    delta.dead -= 1;
                    excess -= 1;
                }
            }
            QueueOp::Replay { queue, seq } => {
                let name = queue.encode();
                let removed = dead
                    .remove(entry_key(&name, seq).as_slice())
                    .map_err(failed)?;
                let Some(letter) = removed.and_then(|v| codec::decode_dead_letter(v.value(), seq))
                else {
                    return Ok(());
                };
                let entry = Entry {
                    attempts: 0,
                    not_before: 0,
                    ..letter.entry
                };
                tx.queue()?
                    .insert(
                        entry_key(&name, seq).as_slice(),
                        codec::entry(&entry).as_slice(),
                    )
                    .map_err(failed)?;
                let delta = tx.delta.entry(queue).or_default();
                delta.dead -= 1;
                delta.pending += 1;
                delta.pushed = true;
            }
            QueueOp::Purge { queue, seq } => {
                let name = queue.encode();
                if dead
                    .remove(entry_key(&name, seq).as_slice())
                    .map_err(failed)?
                    .is_some()
                {
                    tx.delta.entry(queue).or_default().dead -= 1;
                }
            }
            QueueOp::SetResult { id, result } => {
                let mut results = tx.txn.open_table(RESULTS).map_err(failed)?;
                results
                    .insert(id.as_str(), codec::call_result(&result).as_slice())
                    .map_err(failed)?;
                if let Some(done) = &result.done {
                    let mut table = tx.txn.open_table(RESULTS_BY_TIME).map_err(failed)?;
                    let key = by_time(done.at, &id);
                    table.insert(key.as_slice(), &[][..]).map_err(failed)?;
                }
            }
            QueueOp::Drop { queue } => {
                let name = queue.encode();
                let count = state.count(&queue);
                let (first, last) = bounds(&name);
                tx.queue()?
                    .retain_in(first.as_slice()..=last.as_slice(), |_, _| false)
                    .map_err(failed)?;
                dead.retain_in(first.as_slice()..=last.as_slice(), |_, _| false)
                    .map_err(failed)?;
                let delta = tx.delta.entry(queue).or_default();
                delta.pending = -(count.pending as i64);
                delta.dead = -(count.dead as i64);
            }
        }
        Ok(())
    }
}

impl Embedded {
    fn read_queue<T>(
        &self,
        definition: TableDefinition<Bytes, Bytes>,
        queue: &QueueKey,
        limit: usize,
        decode: impl Fn(&[u8], u64) -> Option<T>,
    ) -> Result<Vec<T>, KvError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(definition).map_err(failed)?;
        let name = queue.encode();
        let mut out = Vec::new();
        let (first, last) = bounds(&name);
        let range = table
            .range(first.as_slice()..=last.as_slice())
            .map_err(failed)?;
        for item in range.take(limit) {
            let (key, value) = item.map_err(failed)?;
            let Some((_, seq)) = split_key(key.value()) else {
                continue;
            };
            if let Some(decoded) = decode(value.value(), seq) {
                out.push(decoded);
            }
        }
        Ok(out)
    }
}

impl Queues for Embedded {
    fn set_watches(&self, watches: Vec<Watch>, cap: u64) {
        let watches = Arc::new(Watches { list: watches, cap });
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
        let state = self.queues.clone();
        self.write(move |tx| {
            let txn = tx.txn;
            let mut dead = txn.open_table(DEAD).map_err(failed)?;
            for op in ops {
                state.apply_one(tx, &mut dead, op)?;
            }
            Ok(())
        })
    }

    fn peek(&self, queue: &QueueKey, n: usize) -> Result<Vec<Entry>, KvError> {
        self.read_queue(QUEUE, queue, n, codec::decode_entry)
    }

    /// The window is the first `claim.window` entries: one device delivers them all, so what
    /// it does not hold is there to take.
    fn claim(&self, queue: &QueueKey, claim: Claim) -> Pending<Claimed> {
        let window = match self.peek(queue, claim.window) {
            Ok(window) => window,
            Err(e) => return Pending::ready(Err(e)),
        };
        let now = unix_ms();
        let mut claimed = Claimed::default();
        for entry in window {
            if entry.not_before > now {
                let at = claimed
                    .wake_at
                    .map_or(entry.not_before, |at| at.min(entry.not_before));
                claimed.wake_at = Some(at);
            } else if !claim.held.contains(&entry.seq) && claimed.entries.len() < claim.want {
                claimed.entries.push(entry);
            }
        }
        Pending::ready(Ok(claimed))
    }

    fn counts(&self, queue: &QueueKey) -> QueueCounts {
        self.queues.count(queue)
    }

    fn queues(&self) -> Vec<(QueueKey, QueueCounts)> {
        let counts = self.queues.counts.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = counts.iter().map(|(q, c)| (q.clone(), *c)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    fn dead_letters(&self, queue: &QueueKey, limit: usize) -> Result<Vec<DeadLetter>, KvError> {
        self.read_queue(DEAD, queue, limit, codec::decode_dead_letter)
    }

    fn signal(&self, queue: &QueueKey) -> Arc<event_listener::Event> {
        let mut signals = self
            .queues
            .signals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        signals.entry(queue.clone()).or_default().clone()
    }

    fn result(&self, id: &str) -> Result<Option<CallResult>, KvError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(RESULTS).map_err(failed)?;
        let stored = table.get(id).map_err(failed)?;
        Ok(stored.and_then(|v| codec::decode_call_result(v.value())))
    }

    fn expire_results(&self, before: u64, keep: usize) -> Result<usize, KvError> {
        self.write(move |tx| {
            let mut by_time = tx.txn.open_table(RESULTS_BY_TIME).map_err(failed)?;
            let mut results = tx.txn.open_table(RESULTS).map_err(failed)?;
            let total = by_time.len().map_err(failed)? as usize;
            let mut excess = total.saturating_sub(keep);
            let mut gone = Vec::new();
            for item in by_time.iter().map_err(failed)? {
                let (key, _) = item.map_err(failed)?;
                let key = key.value();
                let at = key.get(..8).and_then(|b| b.try_into().ok());
                if at.map_or(0, u64::from_be_bytes) >= before && excess == 0 {
                    break;
                }
                excess = excess.saturating_sub(1);
                gone.push(key.to_vec());
            }
            for key in &gone {
                by_time.remove(key.as_slice()).map_err(failed)?;
                let id = std::str::from_utf8(key.get(8..).unwrap_or_default());
                results.remove(id.unwrap_or_default()).map_err(failed)?;
            }
            Ok(gone.len())
        })
        .wait()
    }

    fn timer_tick(&self, timer: &str, _fleet: bool) -> Result<Option<u64>, KvError> {
        let txn = self.db.begin_read().map_err(failed)?;
        let table = txn.open_table(TIMERS).map_err(failed)?;
        let tick = table.get(timer).map_err(failed)?;
        Ok(tick.and_then(|v| Some(u64::from_le_bytes(v.value().try_into().ok()?))))
    }

    /// Recorded when the run starts, not when it ends: one device, so nobody else could run
    /// it, and a run that crashed the device is not run again at the next start. Made
    /// durable by the next flush.
    fn claim_tick(&self, timer: &str, tick: u64, _fleet: bool) -> Pending<Tick> {
        let timer = timer.to_string();
        self.write(move |tx| {
            let mut table = tx.txn.open_table(TIMERS).map_err(failed)?;
            let last = table.get(timer.as_str()).map_err(failed)?;
            let last = last.and_then(|v| Some(u64::from_le_bytes(v.value().try_into().ok()?)));
            if last.is_some_and(|last| last >= tick) {
                return Ok(Tick::Done);
            }
            table
                .insert(timer.as_str(), &tick.to_le_bytes()[..])
                .map_err(failed)?;
            Ok(Tick::Run)
        })
    }
}
