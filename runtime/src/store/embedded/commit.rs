//! Group commit: writers share transactions, and syncs share durable commits.
//!
//! redb allows one write transaction at a time, and a commit costs the same for one small write
//! as for many: with one transaction per write, concurrent writers queue behind each other's
//! commits, and behind every `fsync`. So the writes go into one *open* transaction instead:
//! each writer applies its operation to it and waits for the commit that covers it. Whoever
//! finds no commit under way takes the transaction out and commits it, with every write that
//! went in meanwhile; the writes that arrive while it commits go into the next transaction,
//! whose commit starts the moment this one ends.
//!
//! A commit is durable (`fsync`) when someone waits for durability ([`Committer::sync`]), and
//! then covers every write before it; otherwise it is made without waiting for the disk, and a
//! later durable commit covers it. A write is visible to every reader once its commit is done,
//! which is before the writer's call returns.
//!
//! An operation must change nothing when it fails on its own account (a full queue, a value
//! that is not a number): it checks first, then writes. A failure of the database itself
//! fails the whole transaction, and every write in it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};

use redb::{Database, Durability, WriteTransaction};

use super::{Delta, failed};
use crate::store::KvError;
use crate::store::queues::QueueKey;

/// The open transaction and where the commits stand.
pub(super) struct Committer {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// The transaction new writes go into, if one is open.
    open: Option<WriteTransaction>,
    /// What the writes in `open` changed in the queue counts.
    delta: HashMap<QueueKey, Delta>,
    /// Commits started; the open transaction will be commit `started + 1`.
    started: u64,
    /// Commits finished (failed ones included).
    finished: u64,
    /// The last commit known durable.
    durable: u64,
    /// Whether a commit is under way.
    committing: bool,
    /// Callers waiting for durability: the next commit is durable if any wait.
    want_durable: usize,
    /// The latest commits that failed, and why: their writers get the error.
    failures: VecDeque<(u64, String)>,
}

/// Failures remembered: a writer learns of its commit's failure as soon as it is woken, long
/// before this many more commits fail.
const FAILURES_KEPT: usize = 64;

impl State {
    fn failed(&mut self, commit: u64, why: String) {
        if self.failures.len() == FAILURES_KEPT {
            self.failures.pop_front();
        }
        self.failures.push_back((commit, why));
    }

    fn failure(&self, commit: u64) -> Option<&str> {
        self.failures
            .iter()
            .find(|(at, _)| *at == commit)
            .map(|(_, why)| why.as_str())
    }
}

/// What a committed transaction changed, for the caller to apply to its in-memory state.
pub(super) type Committed = HashMap<QueueKey, Delta>;

impl Committer {
    pub(super) fn new() -> Committer {
        Committer {
            state: Mutex::default(),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `op` to the open transaction (opening one if none is) and returns once a commit
    /// covers it. `on_commit` gets what each commit changed, in commit order, before any of
    /// its writers return.
    pub(super) fn write<R>(
        &self,
        db: &Database,
        op: impl FnOnce(&WriteTransaction, &mut HashMap<QueueKey, Delta>) -> Result<R, KvError>,
        on_commit: &dyn Fn(Committed),
    ) -> Result<R, KvError> {
        let mut state = self.lock();
        if state.open.is_none() {
            // A commit under way holds redb's write lock: this waits for it, and new writers
            // wait on `state` meanwhile, to go into this transaction.
            let mut txn = db.begin_write().map_err(failed)?;
            txn.set_durability(Durability::None).map_err(failed)?;
            state.open = Some(txn);
        }
        let State { open, delta, .. } = &mut *state;
        let txn = open.as_ref().expect("opened above");
        let result = match op(txn, delta) {
            Ok(result) => result,
            Err(e @ KvError::Failed(_)) => {
                // The transaction may hold half of this write: it goes, with the writes in it,
                // and their writers are told.
                state.open = None;
                state.delta.clear();
                // Numbered as a commit of its own, so that its writers find the failure.
                state.started += 1;
                let number = state.started;
                state.failed(number, e.to_string());
                if !state.committing {
                    state.finished = number;
                }
                self.done.notify_all();
                return Err(e);
            }
            // The operation checked before it wrote anything.
            Err(e) => return Err(e),
        };
        let mine = state.started + 1;
        self.wait_for(state, db, mine, false, on_commit)?;
        Ok(result)
    }

    /// Returns once every write that returned before this call is durable.
    pub(super) fn sync(&self, db: &Database, on_commit: &dyn Fn(Committed)) -> Result<(), KvError> {
        let state = self.lock();
        // Every write that returned is in a finished commit, or in the one under way.
        let target = state.started;
        if state.durable >= target {
            return Ok(());
        }
        self.wait_for(state, db, target, true, on_commit)
    }

    /// Waits until commit `target` is finished (and durable, if `durable`), leading commits
    /// while none is under way.
    fn wait_for<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        db: &Database,
        target: u64,
        durable: bool,
        on_commit: &dyn Fn(Committed),
    ) -> Result<(), KvError> {
        if durable {
            state.want_durable += 1;
        }
        let result = loop {
            let done = state.finished >= target && (!durable || state.durable >= target);
            if done {
                break match state.failure(target) {
                    Some(why) => Err(KvError::Failed(why.to_string())),
                    None => Ok(()),
                };
            }
            if state.committing {
                state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let (next, led) = self.lead(state, db, on_commit);
            state = next;
            if let Err(e) = led {
                break Err(e);
            }
        };
        if durable {
            state.want_durable -= 1;
        }
        result
    }

    /// Commits the open transaction (or, when only durability is wanted, an empty one) with
    /// the lock let go meanwhile; returns with it held again, and how the commit went.
    fn lead<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        db: &Database,
        on_commit: &dyn Fn(Committed),
    ) -> (MutexGuard<'a, State>, Result<(), KvError>) {
        let durable = state.want_durable > 0;
        let txn = match state.open.take() {
            Some(txn) => txn,
            // Nothing to commit: a writer's commit finished while it waited for the lock.
            None if !durable => return (state, Ok(())),
            // Only durability is wanted: an empty transaction, begun under the lock. Begun
            // after it is let go, a writer could open the transaction of the next commit
            // first, and hold redb's write lock waiting for this one: neither would finish.
            None => match db.begin_write() {
                Ok(txn) => txn,
                Err(e) => return (state, Err(failed(e))),
            },
        };
        let delta = std::mem::take(&mut state.delta);
        state.started += 1;
        let number = state.started;
        state.committing = true;
        drop(state);
        let committed = commit(txn, durable);
        if committed.is_ok() && !delta.is_empty() {
            on_commit(delta);
        }
        let mut state = self.lock();
        state.committing = false;
        // Past any transaction that failed while this one was committing.
        state.finished = state.started;
        match &committed {
            Ok(()) if durable => state.durable = number,
            Ok(()) => {}
            Err(e) => state.failed(number, e.to_string()),
        }
        self.done.notify_all();
        (state, committed)
    }
}

/// Commits `txn`; durably, if `durable` (a durable commit makes every commit before it
/// durable).
fn commit(mut txn: WriteTransaction, durable: bool) -> Result<(), KvError> {
    let durability = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    txn.set_durability(durability).map_err(failed)?;
    txn.commit().map_err(failed)
}
