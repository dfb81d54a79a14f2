//! Runs WebAssembly functions: compile once per module (shared by the versions that deploy it), a
//! fresh instance per invocation, every invocation under its [`Limits`], in fuel slices on the
//! executor thread that asks for it ([`Scheduler`]).
//!
//! This module knows nothing of HTTP: an [`Invocation`] is argv, environment and stdin; an
//! [`Outcome`] is the exit status (or the [`Stop`] that ended the run), stdout and stderr.

mod host;
mod kv;
mod limits;
mod module;
mod outbound;
mod publish;
mod recycle;
mod run;
mod scheduler;
mod wasi;

use std::sync::Arc;
use std::time::Instant;

pub use kv::OP_FUEL as KV_OP_FUEL;
pub use limits::{Limit, Limits};
pub use module::{CompileError, Module, ModuleCache};
pub use publish::{
    Admit, Hold, MAX_MESSAGE, MAX_MESSAGES, MAX_OUTBOX_BYTES, Published, Refused, any_topic,
    valid_topic,
};
pub use run::{Console, Invocation, Outcome, Stop};
pub use scheduler::{Busy, DEFAULT_SLICE_FUEL, Scheduler, SchedulerConfig};

/// Runs one invocation to its end on the calling thread, sleeping where the guest sleeps: for
/// `wisp run`, where there is nothing else to interleave with.
pub fn run_here(module: Arc<Module>, invocation: Invocation) -> Outcome {
    let deadline = Instant::now() + module.limits.timeout;
    let slice = DEFAULT_SLICE_FUEL;
    let mut step = run::Run::start(module, invocation, deadline, slice);
    loop {
        step = match step {
            run::Step::Done(outcome) => return outcome,
            run::Step::Yield(run) => run.resume(slice),
            run::Step::Sleep(run, until) => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                run.resume(slice)
            }
            run::Step::Wait(run, waiting) | run::Step::Park(run, waiting) => {
                run.complete(smol::block_on(waiting), slice)
            }
        };
    }
}

#[cfg(test)]
mod kv_tests;
#[cfg(test)]
mod module_tests;
#[cfg(test)]
mod recycle_tests;
#[cfg(test)]
mod tests;
