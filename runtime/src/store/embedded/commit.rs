//! Group commit, on a thread of its own.
//!
//! redb allows one write transaction at a time, and a commit costs about the same for one small
//! write as for many. So no caller writes to the database itself: each hands its operation to
//! the committer thread and gets a [`Pending`] answer. The thread takes every operation queued
//! since its last commit, applies them in order in one transaction, commits it, and answers
//! them all; what arrives meanwhile goes into the next transaction, which starts the moment this
//! one ends. A commit is durable (`fsync`) when someone waits for durability ([`Committer::sync`])
//! and then covers every write before it; otherwise it does not wait for the disk.
//!
//! The callers never block on the database: the executor threads that run guests await the
//! answers and suspend the guest meanwhile, so a slow `fsync` on an SD card holds up the writers
//! that wait for it and nothing else. A write is visible to every reader once it is answered.
//!
//! An operation must change nothing when it fails on its own account (a full queue, a value that
//! is not a number): it checks first, then writes. A failure of the database itself aborts the
//! transaction, and every write in it is answered with the error.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use redb::{Database, Durability, WriteTransaction};

use super::{Delta, failed};
use crate::store::KvError;
use crate::store::pending::{Answer, Pending};
use crate::store::queues::QueueKey;

/// What the writes of one transaction changed in the queue counts.
pub(super) type Deltas = HashMap<QueueKey, Delta>;

/// An operation, applied in the committer's transaction: it returns how to answer its caller
/// once the commit is known, or a database failure that aborts the transaction.
type Op = Box<dyn FnOnce(&WriteTransaction, &mut Deltas) -> Result<Finish, KvError> + Send>;
type Finish = Box<dyn FnOnce(Result<(), &KvError>) + Send>;

/// The queue of operations, and the thread that commits them.
pub(super) struct Committer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    /// Callers waiting for durability.
    syncs: Vec<Answer<()>>,
    /// Commits made, and the last one made durable: when they are equal nothing waits for the
    /// disk.
    commits: u64,
    durable: u64,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Committer {
    /// Starts the thread; `on_commit` gets what each commit changed, before its writers are
    /// answered.
    pub(super) fn start(
        db: Arc<Database>,
        on_commit: impl Fn(Deltas) + Send + 'static,
    ) -> Committer {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            work: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("wisp-store".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, &db, &on_commit)
            })
            .expect("spawn the store's committer thread");
        Committer {
            shared,
            thread: Some(thread),
        }
    }

    /// Queues `op` for the next transaction; its answer comes once that is committed.
    pub(super) fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&WriteTransaction, &mut Deltas) -> Result<R, KvError> + Send + 'static,
    ) -> Pending<R> {
        let (answer, pending) = Pending::later();
        let op: Op = Box::new(move |txn, deltas| {
            let finish: Finish = match op(txn, deltas) {
                Ok(value) => Box::new(move |committed| {
                    answer.give(committed.map(|()| value).map_err(Clone::clone))
                }),
                // A database failure: the transaction must not commit half of this write.
                Err(e @ KvError::Failed(_)) => return Err(e),
                // It checked before it wrote: the others in the transaction go on.
                Err(e) => Box::new(move |_| answer.give(Err(e))),
            };
            Ok(finish)
        });
        let mut state = self.shared.lock();
        state.ops.push(op);
        drop(state);
        self.shared.work.notify_one();
        pending
    }

    /// Answers once every write answered before this call is durable.
    pub(super) fn sync(&self) -> Pending<()> {
        let mut state = self.shared.lock();
        if state.durable == state.commits && state.ops.is_empty() {
            return Pending::ready(Ok(()));
        }
        let (answer, pending) = Pending::later();
        state.syncs.push(answer);
        drop(state);
        self.shared.work.notify_one();
        pending
    }
}

impl Drop for Committer {
    /// Commits what is queued, then stops the thread.
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The committer thread: one transaction after another, for as long as there is work.
fn run(shared: &Shared, db: &Database, on_commit: &dyn Fn(Deltas)) {
    loop {
        let mut state = shared.lock();
        while state.ops.is_empty() && state.syncs.is_empty() && !state.stopping {
            state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.ops.is_empty() && state.syncs.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut state.ops);
        let syncs = std::mem::take(&mut state.syncs);
        drop(state);
        let durable = !syncs.is_empty();
        let (finishes, committed) = commit(db, ops, durable, on_commit);
        let mut state = shared.lock();
        if committed.is_ok() {
            state.commits += 1;
            if durable {
                state.durable = state.commits;
            }
        }
        drop(state);
        let outcome = committed.as_ref().map(|_| ());
        for finish in finishes {
            finish(outcome);
        }
        for sync in syncs {
            sync.give(committed.clone());
        }
    }
}

/// Applies `ops` in one transaction and commits it; the answers to give, and how it went.
fn commit(
    db: &Database,
    ops: Vec<Op>,
    durable: bool,
    on_commit: &dyn Fn(Deltas),
) -> (Vec<Finish>, Result<(), KvError>) {
    let mut finishes = Vec::with_capacity(ops.len());
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        // Nothing was applied: every op is answered with the failure, through a finish that
        // drops it (its caller's pending answer then says the store failed).
        Err(e) => return (Vec::new(), Err(failed(e))),
    };
    let durability = if durable {
        Durability::Immediate
    } else {
        Durability::None
    };
    if let Err(e) = txn.set_durability(durability) {
        return (Vec::new(), Err(failed(e)));
    }
    let mut deltas = Deltas::new();
    for op in ops {
        match op(&txn, &mut deltas) {
            Ok(finish) => finishes.push(finish),
            // The transaction goes (dropped, not committed): none of its writes happened.
            Err(e) => return (finishes, Err(e)),
        }
    }
    match txn.commit() {
        Ok(()) => {
            if !deltas.is_empty() {
                on_commit(deltas);
            }
            (finishes, Ok(()))
        }
        Err(e) => (finishes, Err(failed(e))),
    }
}
