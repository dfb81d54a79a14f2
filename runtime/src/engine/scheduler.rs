//! Invocations run on the executor thread that asks for them, in fuel slices.
//!
//! There is no pool of worker threads and no hand-off: the task that parsed a request
//! instantiates its module and runs the first slice itself. At a slice's end the deadline is
//! checked, so a deadline is exact on an interpreter with no epoch interrupt; a run that has
//! held its thread for a turn (1 ms) goes back to the executor's queue (`yield_now`), so the
//! other tasks on that thread (connections, other runs) take theirs. A run that sleeps in
//! `poll_oneoff` waits on a timer, and one whose store write waits for its commit awaits it:
//! neither holds a thread.
//!
//! What is shared by all threads is the cap on invocations started and not finished (each
//! holds its linear memory) and a bound on how many may wait for one to finish: past it,
//! [`Scheduler::run`] refuses at once ([`Busy`]), and a run that waits past its deadline ends as
//! timed out without starting.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use smol::Timer;
use smol::future::FutureExt as _;
use smol::lock::{Semaphore, SemaphoreGuard};

use super::run::{Run, Step};
use super::{Invocation, Limit, Module, Outcome, Stop};

/// Fuel per slice unless configured: well under a millisecond on a desktop core, a few on a
/// Raspberry Pi, at a cost of a few percent against running unsliced.
pub const DEFAULT_SLICE_FUEL: u64 = 100_000;

/// How long a run keeps its thread before it yields at a slice boundary. Yielding at every
/// slice (50 µs on a desktop core) cost a CPU-bound run a third of its speed on a 2-thread
/// server: each yield woke the other thread, which took the run over, and the run moved between
/// cores at every slice. A slice's boundary still checks the deadline; a thread still looks for
/// I/O after at most this long (`server::run_tasks`).
const TURN: Duration = Duration::from_millis(1);

/// How invocations are admitted and sliced.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Invocations started and not yet finished, at most: each holds its linear memory.
    /// Default: 8 per core.
    pub max_running: usize,
    /// Invocations that may wait for one of those to finish; past it, [`Scheduler::run`]
    /// refuses. Default 256.
    pub queue: usize,
    /// Fuel per slice. Default [`DEFAULT_SLICE_FUEL`].
    pub slice_fuel: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            max_running: 8 * cores,
            queue: 256,
            slice_fuel: DEFAULT_SLICE_FUEL,
        }
    }
}

/// The invocation could not be admitted: too many wait already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Admits invocations and runs them in slices on the calling executor.
pub struct Scheduler {
    config: SchedulerConfig,
    running: Semaphore,
    waiting: AtomicUsize,
    /// Runs that gave back their place while they wait on the network.
    parked: Semaphore,
}

/// Counts a run waiting for its turn, for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Scheduler {
        assert!(config.max_running > 0 && config.slice_fuel > 0);
        Scheduler {
            running: Semaphore::new(config.max_running),
            waiting: AtomicUsize::new(0),
            parked: Semaphore::new(config.queue),
            config,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Invocations waiting for their turn now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Relaxed)
    }

    /// Runs `invocation` of `module` to its end. Dropping the future cancels it at its next
    /// slice boundary (or while it waits); nothing of it is left behind.
    pub fn run(
        &self,
        module: Arc<Module>,
        invocation: Invocation,
    ) -> impl Future<Output = Result<Outcome, Busy>> + Send + '_ {
        let deadline = Instant::now() + module.limits.timeout;
        async move {
            let Some(running) = self.admit(deadline).await? else {
                let limit = Limit::Timeout(module.limits.timeout);
                return Ok(Outcome::stopped(Stop::Limit(limit)));
            };
            let mut running = Some(running);
            let slice = self.config.slice_fuel;
            let mut turn = Instant::now();
            let mut step = Run::start(module, invocation, deadline, slice);
            loop {
                step = match step {
                    Step::Done(outcome) => return Ok(outcome),
                    Step::Yield(run) => {
                        let mut now = Instant::now();
                        if now >= turn + TURN {
                            smol::future::yield_now().await;
                            now = Instant::now();
                            turn = now;
                        }
                        if run.expired(now) {
                            return Ok(run.time_out());
                        }
                        run.resume(slice)
                    }
                    Step::Sleep(run, until) => {
                        Timer::at(until).await;
                        run.resume(slice)
                    }
                    Step::Wait(run, waiting) => {
                        let completion = waiting.await;
                        run.complete(completion, slice)
                    }
                    Step::Park(run, waiting) => {
                        // Its place among the running goes to others while it waits on the
                        // network, up to a bound on runs parked (each still holds its memory).
                        let parked = self.parked.try_acquire();
                        if parked.is_some() {
                            running = None;
                        }
                        let completion = waiting.await;
                        drop(parked);
                        if running.is_none() {
                            let acquired = async { Some(self.running.acquire().await) };
                            let expired = async {
                                Timer::at(deadline).await;
                                None
                            };
                            match acquired.or(expired).await {
                                Some(guard) => running = Some(guard),
                                None => return Ok(run.time_out()),
                            }
                        }
                        run.complete(completion, slice)
                    }
                };
            }
        }
    }

    /// A place among the running invocations; `None` if `deadline` passed while waiting.
    async fn admit(&self, deadline: Instant) -> Result<Option<SemaphoreGuard<'_>>, Busy> {
        if let Some(guard) = self.running.try_acquire() {
            return Ok(Some(guard));
        }
        if self.waiting.fetch_add(1, Relaxed) >= self.config.queue {
            self.waiting.fetch_sub(1, Relaxed);
            return Err(Busy);
        }
        let _waiting = Waiting(&self.waiting);
        let acquired = async { Some(self.running.acquire().await) };
        let expired = async {
            Timer::at(deadline).await;
            None
        };
        Ok(acquired.or(expired).await)
    }
}
