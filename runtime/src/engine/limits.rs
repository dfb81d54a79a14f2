//! What one invocation may use, and the names of the limits it can hit.

use std::fmt;
use std::time::Duration;

/// The budget of one invocation. Each limit, when hit, ends that invocation only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (wasmi's instruction meter) for the whole invocation. Default 1,000,000,000:
    /// about half a second of a desktop core's time, a few seconds of a Raspberry Pi's.
    pub fuel: u64,
    /// Wall-clock time from admission to the end of the run, time spent queued included.
    /// Default 10 s.
    pub timeout: Duration,
    /// Largest linear memory, in bytes: `memory.grow` fails past it. Default 64 MiB.
    pub memory_bytes: u64,
    /// Deepest call stack, in nested wasm calls. Default 1,024.
    pub max_recursion_depth: usize,
    /// Most bytes the function may write to stdout (its response). Default 4 MiB.
    pub stdout_bytes: usize,
    /// Most bytes the function may write to stderr (its log). Default 64 KiB.
    pub stderr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            max_recursion_depth: 1024,
            stdout_bytes: 4 << 20,
            stderr_bytes: 64 << 10,
        }
    }
}

/// The limit an invocation ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Fuel(u64),
    Timeout(Duration),
    Memory(u64),
    Stack(usize),
    Stdout(usize),
    Stderr(usize),
}

impl Limit {
    /// A short stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Limit::Fuel(_) => "fuel",
            Limit::Timeout(_) => "timeout",
            Limit::Memory(_) => "memory",
            Limit::Stack(_) => "stack",
            Limit::Stdout(_) => "stdout",
            Limit::Stderr(_) => "stderr",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Fuel(n) => write!(f, "fuel limit of {n} exhausted"),
            Limit::Timeout(d) => write!(f, "deadline of {} ms passed", d.as_millis()),
            Limit::Memory(n) => write!(f, "memory limit of {} KiB reached", n / 1024),
            Limit::Stack(n) => write!(f, "stack limit of {n} nested calls reached"),
            Limit::Stdout(n) => write!(f, "stdout limit of {n} bytes exceeded"),
            Limit::Stderr(n) => write!(f, "stderr limit of {n} bytes exceeded"),
        }
    }
}
