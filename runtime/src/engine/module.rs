//! A function module, validated at deploy and compiled once for all the functions and versions
//! that deploy the same bytes with the same limits.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use wasmi::{
    CompilationMode, Config, CustomFuelCosts, Engine, ExternType, Func, Global, Instance, Linker,
    Memory, Store, Val,
};

use super::Limits;
use super::host::{HostState, Imports, MemoryLimiter};
use super::{Invocation, kv, outbound, publish, recycle, wasi};

/// A compiled module and everything needed to run it: its own wasmi `Engine` (an engine keeps
/// all code it compiled until dropped, so the code goes when the last version using this module
/// goes), the `Linker` built once for it, and its limits.
pub struct Module {
    pub(crate) engine: Engine,
    pub(crate) module: wasmi::Module,
    pub(crate) linker: Linker<HostState>,
    pub(crate) limits: Limits,
    size: usize,
    /// Instances to reuse, when the module allows it (see [`recycle`]).
    recycler: Option<Recycler>,
}

/// What an instance is right after instantiation, and the instances kept to reuse.
struct Recycler {
    /// The export names of the mutable globals.
    globals: Vec<String>,
    /// Linear memory right after instantiation, page by page; `None` for a page of zeros. Most
    /// of it is zeros (the stack, the heap), and a module costs only its other pages: 100
    /// distinct modules held 13 MiB more when the whole image was kept.
    image: Vec<Option<Box<[u8]>>>,
    /// The size of linear memory right after instantiation.
    memory_size: usize,
    /// The mutable globals' values right after instantiation.
    values: Vec<Val>,
    spares: Mutex<Vec<(Store<HostState>, Handles)>>,
}

/// The handles of an instance that recycling needs.
pub(crate) struct Handles {
    pub start: Func,
    memory: Memory,
    globals: Vec<Global>,
}

/// The largest linear memory an instance may start with to be reused. Restoring compares every
/// page with the image: for 2 pages that is far cheaper than instantiating, but for 17 (rustc's
/// default 1 MiB stack) it costs more than zeroing them anew (measured: 20.6 µs against 8.2).
const MAX_RECYCLED_MEMORY: usize = 4 * 65536;

/// The unit restores compare and copy: 4 KiB, a page of the host's, not of wasm's.
const PAGE: usize = 4096;

/// Whether two pages differ, and whether a page is all zeros: a block at a time, its bytes
/// combined with no early exit inside the block, which LLVM makes SIMD of (SSE2, NEON; words on
/// the 32-bit ARMs). `!=` on slices calls libc's `bcmp`, which musl (and the libc Zig links)
/// does a byte at a time: with it the comparison took 60% of the static server's CPU.
fn differs(a: &[u8], b: &[u8]) -> bool {
    let (a_blocks, a_tail) = a.as_chunks::<BLOCK>();
    let (b_blocks, b_tail) = b.as_chunks::<BLOCK>();
    a.len() != b.len()
        || a_tail != b_tail
        || a_blocks
            .iter()
            .zip(b_blocks)
            .any(|(x, y)| x.iter().zip(y).fold(0, |diff, (p, q)| diff | (p ^ q)) != 0)
}

fn is_zero(a: &[u8]) -> bool {
    let (blocks, tail) = a.as_chunks::<BLOCK>();
    tail.iter().all(|&b| b == 0) && blocks.iter().all(|x| x.iter().fold(0, |or, b| or | b) == 0)
}

const BLOCK: usize = 128;

/// Instances kept to reuse, of one module, at most.
const SPARES_PER_MODULE: usize = 8;
/// Bytes of linear memory that all kept instances may hold together, at most: a server with
/// many functions keeps instances of the busiest, not a growing heap of all.
const SPARE_BUDGET: usize = 4 << 20;
/// What a kept instance holds beside its linear memory (its store, its functions' entities),
/// roughly, for the budget.
const SPARE_OVERHEAD: usize = 16 << 10;

static SPARE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Recycler {
    fn drop(&mut self) {
        let kept = self.spares.get_mut().map_or(0, |s| s.len());
        SPARE_BYTES.fetch_sub(kept * self.cost(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl Recycler {
    fn cost(&self) -> usize {
        self.memory_size + SPARE_OVERHEAD
    }
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

/// wasmi's fuel costs, except that translating a function on its first call is free (wasmi
/// charges 7 fuel per byte of the function's body by default, to whichever invocation calls it
/// first). Two reasons:
///
/// - A run that runs out of fuel during that translation cannot be resumed: wasmi 2.0 leaves the
///   function untranslated but returns a plain error instead of `ResumableCall::OutOfFuel`, so a
///   run whose slice ends there fails as if it had used up its whole budget. With the default
///   costs, a chain of twelve 5 KB functions failed so at every slice size up to 100,000, and a
///   function over 14 KB could never run in slices of 100,000
///   (`module_tests::lazy_translation_resumes_across_slices` guards against it).
/// - Fuel meters an invocation's work: the same request should cost the same whether or not an
///   earlier invocation, of this function or of another sharing its module, translated the code.
///
/// So an invocation is charged the same fuel as under eager translation, which was done at
/// deploy and not charged either. The unmetered work is bounded: each function is translated at
/// most once per module, in time linear in its size.
const FUEL_COSTS: CustomFuelCosts = CustomFuelCosts {
    // wasmi's default.
    bytes_copied_per_fuel: 64,
    fuel_per_bytes_translated: 0,
    // Validation happens at deploy, never during a run; free in case that ever changes.
    fuel_per_bytes_validated: 0,
};

impl Module {
    /// Validates `wasm` and prepares it to run. Validation is eager, so a bad module is refused
    /// here, at deploy; translation to wasmi's code is lazy, each function on its first call:
    /// a deployed function holds code for what it runs, not for all it could run, and deploys
    /// faster (the first call of each function pays its translation instead).
    pub fn compile(wasm: &[u8], limits: Limits) -> Result<Arc<Module>, CompileError> {
        if !wasm.starts_with(b"\0asm") {
            return Err(CompileError::NotWasm);
        }
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .fuel_cost(FUEL_COSTS)
            .compilation_mode(CompilationMode::LazyTranslation)
            // Nothing here reads them, and a module built with debug info carries megabytes.
            .ignore_custom_sections(true)
            .set_max_recursion_depth(limits.max_recursion_depth)
            // Stacks are recycled within an engine; a few cover the workers that share it.
            .set_max_cached_stacks(4);
        let engine = Engine::new(&config);
        // If its instances can be reused, the module is rewritten for that (it only gains
        // exports, and loses custom sections).
        let prepared = recycle::prepare(wasm);
        let bytes = prepared.as_ref().map_or(wasm, |p| p.wasm.as_slice());
        let module = wasmi::Module::new(&engine, bytes).map_err(|e| {
            // Said of the bytes as uploaded: the rewrite moves offsets.
            let original = prepared
                .as_ref()
                .and_then(|_| wasmi::Module::new(&engine, wasm).err());
            CompileError::Invalid(original.unwrap_or(e).to_string())
        })?;
        for import in module.imports() {
            let known = match import.module() {
                wasi::MODULE_NAME => wasi::provides(import.name()),
                kv::MODULE_NAME => {
                    kv::provides(import.name())
                        || publish::provides(import.name())
                        || outbound::provides(import.name())
                }
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
        let mut imports = Imports {
            linker: &mut linker,
            module: &module,
        };
        wasi::add_to_linker(&mut imports).expect("the WASI names are unique");
        kv::add_to_linker(&mut imports).expect("the wisp names are unique");
        publish::add_to_linker(&mut imports).expect("the wisp names are unique");
        outbound::add_to_linker(&mut imports).expect("the wisp names are unique");
        let mut module = Module {
            engine,
            module,
            linker,
            limits,
            size: wasm.len(),
            recycler: None,
        };
        // A trial instantiation catches what names alone do not: an import of the right name
        // with the wrong signature, or a data segment that does not fit.
        let mut store = module.store(Invocation::default());
        store
            .set_fuel(module.limits.fuel)
            .expect("fuel metering is on");
        let instance = module
            .linker
            .instantiate_and_start(&mut store, &module.module)
            .map_err(|e| CompileError::Invalid(format!("cannot instantiate: {e}")))?;
        // It also gives what a fresh instance is, for recycling.
        if let Some(prepared) = prepared {
            module.recycler = Recycler::from_trial(&store, &instance, prepared.globals);
        }
        Ok(Arc::new(module))
    }

    /// The size of the module's wasm bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The handles recycling needs of a new `instance` in `store`, if the module is recycled.
    pub(crate) fn handles(&self, store: &Store<HostState>, instance: &Instance) -> Option<Handles> {
        let recycler = self.recycler.as_ref()?;
        Some(Handles {
            start: instance.get_func(store, "_start")?,
            memory: instance.get_memory(store, "memory")?,
            globals: recycler
                .globals
                .iter()
                .map(|name| instance.get_global(store, name))
                .collect::<Option<_>>()?,
        })
    }

    /// A kept instance made ready for `invocation`, or the invocation back if none is kept.
    pub(crate) fn spare(
        &self,
        invocation: Invocation,
    ) -> Result<(Store<HostState>, Handles), Invocation> {
        let Some(recycler) = &self.recycler else {
            return Err(invocation);
        };
        let taken = recycler
            .spares
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let Some((mut store, handles)) = taken else {
            return Err(invocation);
        };
        SPARE_BYTES.fetch_sub(recycler.cost(), std::sync::atomic::Ordering::Relaxed);
        let state = store.data_mut();
        state.args = invocation.args;
        state.env = invocation.env;
        state.stdin = invocation.stdin;
        state.stdin_pos = 0;
        state.console = invocation.console;
        state.stdout.clear();
        state.stderr.clear();
        state.limiter.refused = false;
        state.started = Instant::now();
        state.kv = invocation.kv;
        state.kv_wrote = false;
        state.topics = invocation.topics;
        state.published.clear();
        state.published_bytes = 0;
        state.outbound = invocation.outbound;
        state.http_calls = 0;
        state.http_response = None;
        Ok((store, handles))
    }

    /// Restores an instance whose invocation ended normally to what a fresh one is, and keeps
    /// it for the next invocation; or lets it go, if its memory grew or enough are kept.
    pub(crate) fn recycle(&self, mut store: Store<HostState>, handles: Handles) {
        let Some(recycler) = &self.recycler else {
            return;
        };
        use std::sync::atomic::Ordering::Relaxed;
        if SPARE_BYTES.load(Relaxed) + recycler.cost() > SPARE_BUDGET {
            return;
        }
        let memory = handles.memory.data_mut(&mut store);
        if memory.len() != recycler.memory_size {
            return;
        }
        // Most pages are as they were: compare, and copy back only those that differ. Most of
        // the image is zeros (the stack, the heap): those pages are only checked to be zero,
        // which reads half as much.
        for (page, image) in memory.chunks_exact_mut(PAGE).zip(&recycler.image) {
            match image {
                None if !is_zero(page) => page.fill(0),
                Some(image) if differs(page, image) => page.copy_from_slice(image),
                _ => {}
            }
        }
        for (global, value) in handles.globals.iter().zip(&recycler.values) {
            if global.set(&mut store, value.clone()).is_err() {
                return;
            }
        }
        let mut spares = recycler.spares.lock().unwrap_or_else(|e| e.into_inner());
        if spares.len() < SPARES_PER_MODULE {
            SPARE_BYTES.fetch_add(recycler.cost(), Relaxed);
            spares.push((store, handles));
        }
    }

    /// Instances kept for reuse now.
    #[cfg(test)]
    pub(crate) fn spares(&self) -> usize {
        self.recycler.as_ref().map_or(0, |r| {
            r.spares.lock().unwrap_or_else(|e| e.into_inner()).len()
        })
    }

    /// A fresh store for one invocation.
    pub(crate) fn store(&self, invocation: Invocation) -> Store<HostState> {
        let state = HostState {
            args: invocation.args,
            env: invocation.env,
            stdin: invocation.stdin,
            stdin_pos: 0,
            console: invocation.console,
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
            topics: invocation.topics,
            published: Vec::new(),
            published_bytes: 0,
            outbound: invocation.outbound,
            http_calls: 0,
            http_response: None,
            deadline: Instant::now() + self.limits.timeout,
            timeout: self.limits.timeout,
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

/// Compiled modules by content and limits, so that functions and versions deploying the same
/// bytes with the same limits share one [`Module`]: its engine, its code and its linker. It holds
/// them weakly, so a module still goes when the last version using it goes.
#[derive(Default)]
pub struct ModuleCache {
    entries: Mutex<Entries>,
}

/// By the hash of the wasm bytes: the limits each is compiled with, and the module.
type Entries = HashMap<String, Vec<(Limits, Weak<Module>)>>;

impl ModuleCache {
    /// The module of `hash` compiled with `limits`, if one is in use.
    pub fn get(&self, hash: &str, limits: &Limits) -> Option<Arc<Module>> {
        live(self.lock().get(hash)?, limits)
    }

    /// The module of `hash` compiled with `limits`: the one in use, or `wasm` (the bytes of
    /// `hash`) compiled now.
    pub fn compile(
        &self,
        hash: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<Arc<Module>, CompileError> {
        if let Some(module) = self.get(hash, &limits) {
            return Ok(module);
        }
        // Not under the lock: one deploy's compilation does not hold up another's.
        let module = Module::compile(wasm, limits)?;
        let mut entries = self.lock();
        // Whatever is no longer in use goes now: the cache is never much larger than the set of
        // modules in use, however many come and go.
        entries.retain(|_, compiled| {
            compiled.retain(|(_, module)| module.strong_count() > 0);
            !compiled.is_empty()
        });
        let compiled = entries.entry(hash.to_string()).or_default();
        // A concurrent deploy of the same bytes may have come first: share its module.
        if let Some(first) = live(compiled, &module.limits) {
            return Ok(first);
        }
        compiled.push((module.limits.clone(), Arc::downgrade(&module)));
        Ok(module)
    }

    /// Modules in the cache, some perhaps no longer in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Nothing panics under this lock in a way that could leave the map unsound.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn live(compiled: &[(Limits, Weak<Module>)], limits: &Limits) -> Option<Arc<Module>> {
    compiled
        .iter()
        .filter(|(with, _)| with == limits)
        .find_map(|(_, module)| module.upgrade())
}

impl Recycler {
    /// The image of a module's instance right after instantiation, from the trial one; `None`
    /// if the module has no exported memory or a global cannot be read.
    fn from_trial(
        store: &Store<HostState>,
        instance: &Instance,
        globals: Vec<String>,
    ) -> Option<Recycler> {
        let memory = instance.get_memory(store, "memory")?;
        if memory.data_size(store) > MAX_RECYCLED_MEMORY {
            return None;
        }
        let values = globals
            .iter()
            .map(|name| Some(instance.get_global(store, name)?.get(store)))
            .collect::<Option<_>>()?;
        let data = memory.data(store);
        let image = data
            .chunks_exact(PAGE)
            .map(|page| (!is_zero(page)).then(|| page.into()))
            .collect();
        Some(Recycler {
            globals,
            image,
            memory_size: data.len(),
            values,
            spares: Mutex::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{differs, is_zero};

    /// Equal pages and pages differing in one byte anywhere, and lengths that are not whole
    /// blocks, against the slices' own comparison.
    #[test]
    fn differs_agrees_with_slice_comparison() {
        let page: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        for at in 0..page.len() {
            let mut other = page.clone();
            assert!(!differs(&page, &other));
            other[at] ^= 1 << (at % 8);
            assert!(differs(&page, &other), "a difference at {at} not seen");
        }
        for len in [0, 1, 63, 65, 100] {
            let (a, mut b) = (page[..len].to_vec(), page[..len].to_vec());
            assert!(!differs(&a, &b));
            if let Some(last) = b.last_mut() {
                *last ^= 0x80;
                assert!(differs(&a, &b));
            }
        }
        assert!(differs(&page[..10], &page[..11]));
        let zeros = vec![0u8; 4096 + 5];
        assert!(is_zero(&zeros) && is_zero(&[]));
        for at in 0..zeros.len() {
            let mut other = zeros.clone();
            other[at] = 1 << (at % 8);
            assert!(!is_zero(&other), "a non-zero byte at {at} not seen");
        }
    }
}
