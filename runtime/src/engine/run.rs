//! One invocation, run in fuel slices.
//!
//! A run gets at most `slice` fuel at a time. When a slice is used up, wasmi suspends the call
//! (`ResumableCall::OutOfFuel`) and the scheduler decides what runs next: between slices it checks
//! the deadline, so a deadline is exact on an interpreter with no epoch interrupt, and a long
//! computation never holds its thread for more than one slice while others wait.

use std::sync::Arc;
use std::time::Instant;

use wasmi::{
    Error, ResumableCall, ResumableCallHostTrap, ResumableCallOutOfFuel, Store, TrapCode, Val,
};

use super::host::{Completion, HostState, HostStop, Waiting};
use super::module::Handles;
use super::publish::{Admit, Published};
use super::{Limit, Limits, Module};
use crate::store::Grants;

/// The input of one invocation.
#[derive(Clone, Default)]
pub struct Invocation {
    /// `argv`, the program name first.
    pub args: Vec<String>,
    /// The environment, as `KEY=value` strings.
    pub env: Vec<String>,
    pub stdin: Vec<u8>,
    /// The stores the function may use through the `wisp` imports.
    pub kv: Option<Arc<Grants>>,
    /// The topics it may publish to; none when `None`.
    pub topics: Option<Arc<dyn Admit>>,
    /// The origins it may call over HTTP; none when `None`.
    pub outbound: Option<Arc<crate::outbound::Outbound>>,
    /// Where stdio goes when the guest runs attached (`wisp run`): stdin is read when the guest
    /// reads it, and what it writes goes out at once, not buffered (and not capped). `None`
    /// everywhere else: `stdin` is the input, and the output is kept for the [`Outcome`].
    pub console: Option<Arc<dyn Console>>,
}

/// A terminal or pipes for a guest's stdio (see [`Invocation::console`]).
pub trait Console: Send + Sync {
    /// Reads what is there, blocking until something is or the input ends (`Ok(0)`).
    fn read(&self, buf: &mut [u8]) -> std::io::Result<usize>;
    /// Writes all of `bytes` to stdout (`fd` 1) or stderr (2), and flushes it.
    fn write(&self, fd: i32, bytes: &[u8]) -> std::io::Result<()>;
}

/// What an invocation left behind.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status (`0` when `_start` returned), or why the run was stopped.
    pub result: Result<i32, Stop>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub fuel_used: u64,
    /// The size of linear memory at the end, in bytes.
    pub memory_bytes: u64,
    /// Whether it wrote to a store (made durable by [`Grants::sync`] before answering).
    pub kv_wrote: bool,
    /// The messages it published, to be committed only if it succeeded.
    pub published: Vec<Published>,
}

/// Why a run was stopped before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// It ran into one of its limits.
    Limit(Limit),
    /// It trapped (`unreachable`, an out-of-bounds access, a failed instantiation...).
    Trap(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Limit(limit) => limit.fmt(f),
            Stop::Trap(why) => write!(f, "trapped: {why}"),
        }
    }
}

/// A run between two slices.
pub(crate) struct Run {
    module: Arc<Module>,
    store: Store<HostState>,
    call: Suspended,
    fuel_used: u64,
    deadline: Instant,
    /// For reusing the instance once it ends, if its module allows that.
    handles: Option<Handles>,
}

enum Suspended {
    OutOfFuel(ResumableCallOutOfFuel),
    /// In a host call (`poll_oneoff`, a store write) that waits; resumed with its return value.
    InHost(ResumableCallHostTrap),
}

/// Where a run stands after a slice.
pub(crate) enum Step {
    Done(Outcome),
    /// Used up its slice; ready to go on.
    Yield(Run),
    /// Waiting until then; not ready before.
    Sleep(Run, Instant),
    /// Waiting for the host: [`Run::complete`] goes on with what `Waiting` gives.
    Wait(Run, Waiting),
    /// As `Wait`, for long enough (the network) that the run gives back its place meanwhile.
    Park(Run, Waiting),
}

impl Run {
    /// Runs `_start` for the first slice, in an instance its module kept for reuse or in a
    /// fresh one.
    pub(crate) fn start(
        module: Arc<Module>,
        invocation: Invocation,
        deadline: Instant,
        slice: u64,
    ) -> Step {
        let fuel = slice.min(module.limits.fuel);
        let (store, started, handles) = match module.spare(invocation) {
            Ok((mut store, handles)) => {
                store.set_fuel(fuel).expect("fuel metering is on");
                store.data_mut().deadline = deadline;
                let started = handles.start.call_resumable(&mut store, &[], &mut []);
                (store, started, Some(handles))
            }
            Err(invocation) => {
                let mut store = module.store(invocation);
                store.set_fuel(fuel).expect("fuel metering is on");
                store.data_mut().deadline = deadline;
                let mut handles = None;
                let started = module
                    .linker
                    .instantiate_and_start(&mut store, &module.module)
                    .and_then(|instance| {
                        store.data_mut().memory = instance.get_memory(&store, "memory");
                        handles = module.handles(&store, &instance);
                        let start = instance
                            .get_func(&store, "_start")
                            .expect("checked at compile");
                        start.call_resumable(&mut store, &[], &mut [])
                    });
                (store, started, handles)
            }
        };
        let used = fuel - store.get_fuel().unwrap_or(0);
        Self::settle(module, store, handles, used, deadline, started)
    }

    /// Runs the next slice.
    pub(crate) fn resume(self, slice: u64) -> Step {
        self.go_on(slice, |_, _| 0)
    }

    /// Finishes the host call the run waited in with `completion`, then runs the next slice.
    pub(crate) fn complete(self, completion: Completion, slice: u64) -> Step {
        self.go_on(slice, completion)
    }

    /// Runs the next slice; a run suspended in a host call returns from it with what `finish`
    /// gives (and writes into memory).
    fn go_on(self, slice: u64, finish: impl FnOnce(&mut [u8], &mut HostState) -> i32) -> Step {
        let Run {
            module,
            mut store,
            call,
            fuel_used,
            deadline,
            handles,
        } = self;
        let remaining = module.limits.fuel - fuel_used;
        let (fuel, result) = match call {
            Suspended::OutOfFuel(call) => {
                let fuel = slice.max(call.required_fuel()).min(remaining);
                store.set_fuel(fuel).expect("fuel metering is on");
                (fuel, call.resume(&mut store, &mut []))
            }
            Suspended::InHost(call) => {
                let value = match store.data().memory {
                    Some(memory) => {
                        let (mem, state) = memory.data_and_store_mut(&mut store);
                        finish(mem, state)
                    }
                    None => {
                        let mut no_memory = [];
                        finish(&mut no_memory, store.data_mut())
                    }
                };
                let fuel = slice.min(remaining);
                store.set_fuel(fuel).expect("fuel metering is on");
                (fuel, call.resume(&mut store, &[Val::I32(value)], &mut []))
            }
        };
        let used = fuel_used + fuel - store.get_fuel().unwrap_or(0);
        Self::settle(module, store, handles, used, deadline, result)
    }

    /// Whether the deadline has passed; the pool checks this for runs that wait their turn.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Ends a run that waited past its deadline.
    pub(crate) fn time_out(self) -> Outcome {
        let limit = Limit::Timeout(self.module.limits.timeout);
        outcome(self.store, self.fuel_used, Err(Stop::Limit(limit)))
    }

    fn settle(
        module: Arc<Module>,
        store: Store<HostState>,
        handles: Option<Handles>,
        fuel_used: u64,
        deadline: Instant,
        result: Result<ResumableCall, Error>,
    ) -> Step {
        let limits = &module.limits;
        let stopped = |store, limit| Step::Done(outcome(store, fuel_used, Err(Stop::Limit(limit))));
        let call = match result {
            Ok(ResumableCall::Finished) => {
                // Only a run that returned from `_start` gives its instance back: one stopped
                // mid-call leaves the engine's state for that call behind.
                return Step::Done(finished(&module, store, handles, fuel_used));
            }
            Ok(ResumableCall::OutOfFuel(call)) => {
                let remaining = limits.fuel - fuel_used;
                if remaining == 0 || remaining < call.required_fuel() {
                    return stopped(store, Limit::Fuel(limits.fuel));
                }
                Suspended::OutOfFuel(call)
            }
            Ok(ResumableCall::HostTrap(call)) => {
                if let Some(code) = call.host_error().i32_exit_status() {
                    return Step::Done(outcome(store, fuel_used, Ok(code)));
                }
                match call.host_error().downcast_ref::<HostStop>() {
                    Some(HostStop::Limit(limit)) => return stopped(store, *limit),
                    Some(HostStop::Sleep(until)) => {
                        let until = (*until).min(deadline);
                        let run = Run {
                            module,
                            store,
                            call: Suspended::InHost(call),
                            fuel_used,
                            deadline,
                            handles,
                        };
                        return Step::Sleep(run, until);
                    }
                    Some(stop @ (HostStop::Wait(waiting) | HostStop::Park(waiting))) => {
                        let park = matches!(stop, HostStop::Park(_));
                        let waiting = waiting.lock().unwrap_or_else(|e| e.into_inner()).take();
                        let waiting = waiting.expect("a host call waits once");
                        let run = Run {
                            module,
                            store,
                            call: Suspended::InHost(call),
                            fuel_used,
                            deadline,
                            handles,
                        };
                        return match park {
                            true => Step::Park(run, waiting),
                            false => Step::Wait(run, waiting),
                        };
                    }
                    None => {
                        let why = call.host_error().to_string();
                        return Step::Done(outcome(store, fuel_used, Err(Stop::Trap(why))));
                    }
                }
            }
            Err(error) => {
                let stop = classify(&error, &store, limits);
                return Step::Done(outcome(store, fuel_used, stop));
            }
        };
        let run = Run {
            module,
            store,
            call,
            fuel_used,
            deadline,
            handles,
        };
        if run.expired(Instant::now()) {
            return Step::Done(run.time_out());
        }
        Step::Yield(run)
    }
}

/// Names the limit behind an error where there is one.
fn classify(error: &Error, store: &Store<HostState>, limits: &Limits) -> Result<i32, Stop> {
    if let Some(code) = error.i32_exit_status() {
        return Ok(code);
    }
    if let Some(HostStop::Limit(limit)) = error.downcast_ref::<HostStop>() {
        return Err(Stop::Limit(*limit));
    }
    let limiter = &store.data().limiter;
    match error.as_trap_code() {
        Some(TrapCode::StackOverflow) => Err(Stop::Limit(Limit::Stack(limits.max_recursion_depth))),
        Some(TrapCode::OutOfFuel) => Err(Stop::Limit(Limit::Fuel(limits.fuel))),
        // A refused `memory.grow` surfaces as the allocator's abort: report the cause.
        Some(_) if limiter.refused => Err(Stop::Limit(Limit::Memory(limiter.max_bytes))),
        _ => Err(Stop::Trap(error.to_string())),
    }
}

/// The outcome of a run that returned from `_start`; its instance goes back to its module for
/// reuse when the module allows it.
fn finished(
    module: &Module,
    mut store: Store<HostState>,
    handles: Option<Handles>,
    fuel_used: u64,
) -> Outcome {
    let Some(handles) = handles else {
        return outcome(store, fuel_used, Ok(0));
    };
    let memory_bytes = store
        .data()
        .memory
        .map_or(0, |m| m.data_size(&store) as u64);
    let state = store.data_mut();
    let outcome = Outcome {
        result: Ok(0),
        stdout: std::mem::take(&mut state.stdout),
        stderr: std::mem::take(&mut state.stderr),
        fuel_used,
        memory_bytes,
        kv_wrote: state.kv_wrote,
        published: std::mem::take(&mut state.published),
    };
    // What the invocation was given goes now, not when the instance is next used.
    state.args = Vec::new();
    state.env = Vec::new();
    state.stdin = Vec::new();
    state.console = None;
    state.kv = None;
    state.topics = None;
    module.recycle(store, handles);
    outcome
}

fn outcome(store: Store<HostState>, fuel_used: u64, result: Result<i32, Stop>) -> Outcome {
    let memory_bytes = store
        .data()
        .memory
        .map_or(0, |m| m.data_size(&store) as u64);
    let state = store.into_data();
    Outcome {
        result,
        stdout: state.stdout,
        stderr: state.stderr,
        fuel_used,
        memory_bytes,
        kv_wrote: state.kv_wrote,
        published: state.published,
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
