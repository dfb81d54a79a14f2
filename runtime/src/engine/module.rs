//! A function module, validated and compiled once per version.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use wasmi::{CompilationMode, Config, Engine, ExternType, Linker, Store};

use super::Limits;
use super::host::{HostState, MemoryLimiter};
use super::{Invocation, kv, wasi};

/// A compiled module version and everything needed to run it: its own wasmi `Engine` (an
/// engine keeps all code it compiled until dropped, so a version's code goes when the version
/// goes), the `Linker` built once for it, and its limits.
pub struct Module {
    pub(crate) engine: Engine,
    pub(crate) module: wasmi::Module,
    pub(crate) linker: Linker<HostState>,
    pub(crate) limits: Limits,
    size: usize,
}

/// Why a module was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// The bytes do not start with the wasm magic number.
    NotWasm,
    /// The module failed validation or compilation.
    Invalid(String),
    /// The module imports something Wisp does not provide.
    UnknownImport { module: String, name: String },
    /// The module exports no `_start` function taking and returning nothing.
    NoStart,
    /// The module's initial memory is already over the memory limit.
    MemoryTooLarge { initial: u64, limit: u64 },
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::NotWasm => f.write_str("not a WebAssembly module (bad magic number)"),
            CompileError::Invalid(why) => write!(f, "invalid module: {why}"),
            CompileError::UnknownImport { module, name } => {
                write!(
                    f,
                    "module imports `{module}::{name}`, which Wisp does not provide"
                )
            }
            CompileError::NoStart => {
                f.write_str("module exports no `_start` function (build it as a WASI command)")
            }
            CompileError::MemoryTooLarge { initial, limit } => write!(
                f,
                "module's initial memory ({} KiB) is over the memory limit ({} KiB)",
                initial / 1024,
                limit / 1024
            ),
        }
    }
}

impl std::error::Error for CompileError {}

impl Module {
    /// Validates and compiles `wasm` eagerly: a module that is accepted here cannot fail
    /// translation later, and its first request is as fast as the others.
    pub fn compile(wasm: &[u8], limits: Limits) -> Result<Arc<Module>, CompileError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(CompileError::NotWasm);
        }
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .compilation_mode(CompilationMode::Eager)
            .set_max_recursion_depth(limits.max_recursion_depth)
            // Stacks are recycled within an engine; a few cover the workers that share it.
            .set_max_cached_stacks(4);
        let engine = Engine::new(&config);
        let module =
            wasmi::Module::new(&engine, wasm).map_err(|e| CompileError::Invalid(e.to_string()))?;
        for import in module.imports() {
            let known = match import.module() {
                wasi::MODULE_NAME => wasi::provides(import.name()),
                kv::MODULE_NAME => kv::provides(import.name()),
                _ => false,
            };
            if !known || !matches!(import.ty(), ExternType::Func(_)) {
                return Err(CompileError::UnknownImport {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                });
            }
        }
        match module.get_export("_start") {
            Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty() => {}
            _ => return Err(CompileError::NoStart),
        }
        for export in module.exports() {
            if let ExternType::Memory(ty) = export.ty() {
                let initial = ty.minimum().saturating_mul(65536);
                if initial > limits.memory_bytes {
                    return Err(CompileError::MemoryTooLarge {
                        initial,
                        limit: limits.memory_bytes,
                    });
                }
            }
        }
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).expect("the WASI names are unique");
        kv::add_to_linker(&mut linker).expect("the wisp names are unique");
        let module = Module {
            engine,
            module,
            linker,
            limits,
            size: wasm.len(),
        };
        // A trial instantiation catches what names alone do not: an import of the right name
        // with the wrong signature, or a data segment that does not fit.
        let mut store = module.store(Invocation::default());
        store
            .set_fuel(module.limits.fuel)
            .expect("fuel metering is on");
        module
            .linker
            .instantiate_and_start(&mut store, &module.module)
            .map_err(|e| CompileError::Invalid(format!("cannot instantiate: {e}")))?;
        Ok(Arc::new(module))
    }

    /// The size of the module's wasm bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh store for one invocation.
    pub(crate) fn store(&self, invocation: Invocation) -> Store<HostState> {
        let state = HostState {
            args: invocation.args,
            env: invocation.env,
            stdin: invocation.stdin,
            stdin_pos: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_cap: self.limits.stdout_bytes,
            stderr_cap: self.limits.stderr_bytes,
            memory: None,
            limiter: MemoryLimiter {
                max_bytes: self.limits.memory_bytes,
                refused: false,
            },
            started: Instant::now(),
            kv: invocation.kv,
            kv_wrote: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("size", &self.size)
            .field("limits", &self.limits)
            .finish()
    }
}
