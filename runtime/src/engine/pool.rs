//! The worker threads that run wasm, fed by a bounded queue.
//!
//! Every invocation runs in fuel slices ([`super::run`]). A worker takes the next thing to do
//! from one shared queue: a new invocation, or a run that used up its slice. It alternates
//! between the two, so new requests start promptly while long runs keep making progress, and
//! with a single worker a CPU-heavy function delays a short one by a slice or two, not by its
//! whole run. Runs that sleep in `poll_oneoff` wait aside without holding a worker.
//!
//! Waking a thread is the expensive part of a hand-over (a `futex` call, and on an idle VM a
//! halted vCPU to bring back), so the pool wakes a worker only when one waits and there is work
//! it could take. A worker that finishes a step takes its next work itself; a run that used up
//! its slice while nothing else waits goes on on the same worker instead of moving cores.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use smol::channel::{Receiver, Sender};

use super::run::{Run, Step};
use super::{Invocation, Limit, Module, Outcome, Stop};

/// Native stack of a worker thread: virtual memory, touched only as deep as a run goes.
const WORKER_STACK: usize = 8 << 20;

/// Fuel per slice unless configured: well under a millisecond on a desktop core, a few on a
/// Raspberry Pi, at a cost of a few percent against running unsliced.
pub const DEFAULT_SLICE_FUEL: u64 = 100_000;

/// How the pool is sized.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker threads. Default: one per core.
    pub workers: usize,
    /// Invocations that may wait to start; past it, [`Pool::submit`] refuses. Default 256.
    pub queue: usize,
    /// Invocations started and not yet finished, at most: each holds its linear memory.
    /// Default: 8 per worker.
    pub max_running: usize,
    /// Fuel per slice. Default 100,000: well under a millisecond on a desktop core, a few on a
    /// Raspberry Pi, at a cost of a few percent against running unsliced.
    pub slice_fuel: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            workers,
            queue: 256,
            max_running: 8 * workers,
            slice_fuel: DEFAULT_SLICE_FUEL,
        }
    }
}

/// The queue was full, or the pool is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Runs invocations on worker threads. Dropping it finishes the work already admitted, then
/// joins the workers.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    config: PoolConfig,
}

#[derive(Default)]
struct Queue {
    fresh: VecDeque<Job>,
    ready: VecDeque<Task>,
    sleeping: Vec<(Instant, Task)>,
    /// Started and not finished, including those on a worker right now.
    running: usize,
    /// Workers waiting for work.
    idle: usize,
    stopping: bool,
}

struct Job {
    module: Arc<Module>,
    invocation: Invocation,
    deadline: Instant,
    reply: Sender<Outcome>,
}

struct Task {
    run: Run,
    reply: Sender<Outcome>,
}

// A `Work` lives for one step on a worker's stack; boxing the larger variant would cost an
// allocation per slice for nothing.
#[allow(clippy::large_enum_variant)]
enum Work {
    Start(Job),
    Resume(Task),
}

/// The answer to a submitted invocation.
pub struct Ticket(Receiver<Outcome>);

impl Ticket {
    /// Waits for the outcome. Dropping the ticket instead cancels the invocation at its next
    /// slice.
    pub async fn outcome(self) -> Outcome {
        self.0
            .recv()
            .await
            .unwrap_or_else(|_| Outcome::stopped(Stop::Trap("worker pool stopped".into())))
    }

    pub fn wait(self) -> Outcome {
        smol::block_on(self.outcome())
    }
}

impl Pool {
    pub fn new(config: PoolConfig) -> Pool {
        assert!(config.workers > 0 && config.max_running > 0 && config.slice_fuel > 0);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            config,
        });
        let workers = (0..shared.config.workers)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("wisp-worker-{i}"))
                    // wasmi's executor keeps deep native frames, deeper still in debug builds.
                    .stack_size(WORKER_STACK)
                    .spawn(move || shared.work())
                    .expect("spawn a worker thread")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Queues an invocation, or refuses at once when the queue is full.
    pub fn submit(&self, module: Arc<Module>, invocation: Invocation) -> Result<Ticket, Busy> {
        let deadline = Instant::now() + module.limits.timeout;
        let (reply, answer) = smol::channel::bounded(1);
        let mut queue = self.shared.lock();
        if queue.stopping || queue.fresh.len() >= self.shared.config.queue {
            return Err(Busy);
        }
        queue.fresh.push_back(Job {
            module,
            invocation,
            deadline,
            reply,
        });
        self.shared.unlock_and_wake(queue);
        Ok(Ticket(answer))
    }

    /// Invocations waiting to start.
    pub fn queued(&self) -> usize {
        self.shared.lock().fresh.len()
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker never panics while holding the lock; if one did, the queue is still sound.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) {
        let mut prefer_fresh = true;
        while let Some(work) = self.next(prefer_fresh) {
            prefer_fresh = matches!(work, Work::Resume(_));
            let (step, reply) = match work {
                Work::Start(job) => {
                    let step = Run::start(job.module, job.invocation, job.deadline, self.slice());
                    (step, job.reply)
                }
                Work::Resume(task) => (task.run.resume(self.slice()), task.reply),
            };
            // The next call to `next` takes work from the queue, this run included: with
            // nothing else waiting, a run that used up its slice comes straight back here.
            match step {
                Step::Done(outcome) => {
                    // Counted out before the outcome goes: whoever receives it may drop the
                    // pool at once. Sent outside the lock, as it may wake the I/O thread; the
                    // receiver may be gone (client hung up), and then there is no one to tell.
                    self.lock().running -= 1;
                    let _ = reply.try_send(outcome);
                }
                Step::Yield(run) => self.lock().ready.push_back(Task { run, reply }),
                Step::Sleep(run, until) => {
                    let mut queue = self.lock();
                    queue.sleeping.push((until, Task { run, reply }));
                    // Idle workers wait until the earliest sleeper they knew of.
                    self.unlock_and_wake(queue);
                }
            }
        }
    }

    /// Lets go of the queue after adding to it, waking a worker if one waits.
    fn unlock_and_wake(&self, queue: MutexGuard<'_, Queue>) {
        let wake = queue.idle > 0;
        drop(queue);
        if wake {
            self.wake.notify_one();
        }
    }

    fn slice(&self) -> u64 {
        self.config.slice_fuel
    }

    /// The next piece of work, or `None` once the pool is stopping and nothing is left.
    fn next(&self, prefer_fresh: bool) -> Option<Work> {
        let mut queue = self.lock();
        loop {
            let now = Instant::now();
            queue.wake_sleepers(now);
            let can_start = queue.running < self.config.max_running && !queue.fresh.is_empty();
            let work = if can_start && (prefer_fresh || queue.ready.is_empty()) {
                queue.fresh.pop_front().map(Work::Start)
            } else {
                queue.ready.pop_front().map(Work::Resume)
            };
            let work = match work {
                Some(Work::Start(job)) if job.reply.is_closed() => continue,
                Some(Work::Start(job)) if now >= job.deadline => {
                    let limit = Limit::Timeout(job.module.limits.timeout);
                    let _ = job.reply.try_send(Outcome::stopped(Stop::Limit(limit)));
                    continue;
                }
                Some(Work::Start(job)) => {
                    queue.running += 1;
                    Work::Start(job)
                }
                Some(Work::Resume(task)) if task.reply.is_closed() => {
                    queue.running -= 1;
                    continue;
                }
                Some(Work::Resume(task)) if task.run.expired(now) => {
                    queue.running -= 1;
                    let _ = task.reply.try_send(task.run.time_out());
                    continue;
                }
                Some(work) => work,
                None if queue.stopping && queue.running == 0 && queue.fresh.is_empty() => {
                    // The others may be waiting for the run that just ended: they stop too.
                    self.wake.notify_all();
                    return None;
                }
                None => {
                    queue.idle += 1;
                    queue = match queue.sleeping.iter().map(|(at, _)| *at).min() {
                        Some(at) => {
                            let wait = at.saturating_duration_since(now);
                            self.wake
                                .wait_timeout(queue, wait)
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                        None => self.wake.wait(queue).unwrap_or_else(|e| e.into_inner()),
                    };
                    queue.idle -= 1;
                    continue;
                }
            };
            // Pass the wake-up on while work is left for a waiting worker.
            if queue.idle > 0 && queue.has_work(self.config.max_running) {
                self.wake.notify_one();
            }
            return Some(work);
        }
    }
}

impl Queue {
    fn has_work(&self, max_running: usize) -> bool {
        !self.ready.is_empty() || (!self.fresh.is_empty() && self.running < max_running)
    }

    fn wake_sleepers(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.sleeping.len() {
            if self.sleeping[i].0 <= now {
                let (_, task) = self.sleeping.swap_remove(i);
                self.ready.push_back(task);
            } else {
                i += 1;
            }
        }
    }
}

impl Outcome {
    /// The outcome of a run stopped before it could start.
    pub(crate) fn stopped(stop: Stop) -> Outcome {
        Outcome {
            result: Err(stop),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_used: 0,
            memory_bytes: 0,
            kv_wrote: false,
            published: Vec::new(),
        }
    }
}
