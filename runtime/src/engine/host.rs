//! The state one invocation's `Store` carries, and the errors host functions raise.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmi::errors::{LinkerError, MemoryError, TableError};
use wasmi::{Caller, Error, FuncType, IntoFunc, Linker, Memory, ResourceLimiter, Val};
use wasmi_core::LimiterError;

use super::Limit;
use super::outbound::Held;
use super::publish::{Admit, Published};
use super::run::Console;
use crate::store::Grants;

/// What a guest sees of the world: its arguments, environment and stdin, and the buffers its
/// stdout and stderr go to.
pub(crate) struct HostState {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub stdin: Vec<u8>,
    pub stdin_pos: usize,
    /// Stdio attached to a terminal or pipes, in place of `stdin` and the buffers.
    pub console: Option<Arc<dyn Console>>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_cap: usize,
    pub stderr_cap: usize,
    /// The guest's exported `memory`, set once instantiated.
    pub memory: Option<Memory>,
    pub limiter: MemoryLimiter,
    /// When the invocation started, for the CPU-time clocks.
    pub started: Instant,
    /// The stores the function may use.
    pub kv: Option<Arc<Grants>>,
    /// Whether it wrote to a store: then the server syncs before it answers.
    pub kv_wrote: bool,
    /// The topics it may publish to.
    pub topics: Option<Arc<dyn Admit>>,
    /// What it published, in order.
    pub published: Vec<Published>,
    pub published_bytes: usize,
    /// The origins it may call, with the log for its refusals; none when `None`.
    pub outbound: Option<Arc<crate::outbound::Outbound>>,
    /// Outbound calls made so far, and the last one's response.
    pub http_calls: u32,
    pub http_response: Option<Held>,
    /// When the invocation must end: an outbound call waits no longer; and the timeout
    /// that set it, for the limit's message.
    pub deadline: Instant,
    pub timeout: std::time::Duration,
}

/// Caps linear memory and remembers whether it refused a growth, so that the trap that
/// usually follows (an allocator's `abort`) is reported as the memory limit it is.
pub(crate) struct MemoryLimiter {
    pub max_bytes: u64,
    pub refused: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let allow = desired as u64 <= self.max_bytes;
        self.refused |= !allow;
        Ok(allow)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        Ok(desired <= 100_000)
    }

    fn memory_grow_failed(&mut self, _error: &MemoryError) -> Result<(), LimiterError> {
        self.refused = true;
        Ok(())
    }

    fn table_grow_failed(&mut self, _error: &TableError) -> Result<(), LimiterError> {
        Ok(())
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The byte range a guest's `(ptr, len)` names, if it lies inside its memory of `size` bytes.
///
/// INVARIANT: every host function reaches guest memory through this check; the arithmetic
/// cannot overflow, so no guest value indexes outside the guest's memory.
pub(crate) fn guest_range(size: usize, ptr: i32, len: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

/// Why a host function stopped the guest. `Sleep` and `Wait` suspend it; `Limit` ends it.
pub(crate) enum HostStop {
    Limit(Limit),
    /// `poll_oneoff` asked to wait until then; its thread runs others meanwhile.
    Sleep(Instant),
    /// A host call waits for something (a store write to be committed); its thread runs others
    /// meanwhile. Taken once, by the scheduler.
    Wait(Mutex<Option<Waiting>>),
    /// A host call waits on the network for up to seconds (an outbound request): as `Wait`,
    /// and the run gives its place among the running invocations to others meanwhile.
    Park(Mutex<Option<Waiting>>),
}

/// What a suspended host call waits for, and then how it finishes.
pub(crate) type Waiting = Pin<Box<dyn Future<Output = Completion> + Send>>;

/// Finishes a host call once what it waited for is here: writes its results into the guest's
/// memory and gives its return value.
pub(crate) type Completion = Box<dyn FnOnce(&mut [u8], &mut HostState) -> i32 + Send>;

impl HostStop {
    pub(crate) fn wait(until: impl Future<Output = Completion> + Send + 'static) -> HostStop {
        HostStop::Wait(Mutex::new(Some(Box::pin(until))))
    }

    pub(crate) fn park(until: impl Future<Output = Completion> + Send + 'static) -> HostStop {
        HostStop::Park(Mutex::new(Some(Box::pin(until))))
    }
}

impl fmt::Debug for HostStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostStop::Limit(limit) => f.debug_tuple("Limit").field(limit).finish(),
            HostStop::Sleep(until) => f.debug_tuple("Sleep").field(until).finish(),
            HostStop::Wait(_) => f.write_str("Wait"),
            HostStop::Park(_) => f.write_str("Park"),
        }
    }
}

impl fmt::Display for HostStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostStop::Limit(limit) => limit.fmt(f),
            HostStop::Sleep(_) => f.write_str("sleeping"),
            HostStop::Wait(_) | HostStop::Park(_) => f.write_str("waiting for the host"),
        }
    }
}

impl wasmi::errors::HostError for HostStop {}

/// A `Linker` that takes only the host functions a module imports. A module uses a handful of
/// the fifty-odd Wisp provides, and each definition costs its linker a few hundred bytes, kept
/// for as long as the module is deployed.
pub(crate) struct Imports<'a> {
    pub linker: &'a mut Linker<HostState>,
    pub module: &'a wasmi::Module,
}

impl Imports<'_> {
    fn wanted(&self, module: &str, name: &str) -> bool {
        self.module
            .imports()
            .any(|i| i.module() == module && i.name() == name)
    }

    pub fn func_wrap<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<HostState, Params, Args>,
    ) -> Result<(), LinkerError> {
        if self.wanted(module, name) {
            self.linker.func_wrap(module, name, func)?;
        }
        Ok(())
    }

    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        func: impl Fn(Caller<'_, HostState>, &[Val], &mut [Val]) -> Result<(), Error>
        + Send
        + Sync
        + 'static,
    ) -> Result<(), LinkerError> {
        if self.wanted(module, name) {
            self.linker.func_new(module, name, ty, func)?;
        }
        Ok(())
    }
}
