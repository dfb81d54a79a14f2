//! Lazy translation under fuel slicing, validation at deploy, and the module cache.

use std::sync::Arc;

use super::*;

/// Functions `$f0`... each a straight line of `ops` additions and multiplications of its
/// argument, big enough that translating one costs wasmi's default 7 fuel per byte many times
/// over the small slices below; `_start` chains them and exits with the result.
fn chain(funcs: usize, ops: usize) -> (String, i32) {
    let mut wat = String::from(
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
    );
    let mut expected = 0i32;
    for f in 0..funcs {
        wat.push_str(&format!("(func $f{f} (param i32) (result i32) local.get 0"));
        for op in 0..ops {
            let (add, mul) = ((f * 131 + op) % 1000, (op % 7) + 2);
            wat.push_str(&format!(" i32.const {add} i32.add i32.const {mul} i32.mul"));
            expected = expected.wrapping_add(add as i32).wrapping_mul(mul as i32);
        }
        wat.push(')');
    }
    wat.push_str(r#"(func (export "_start") i32.const 0"#);
    for f in 0..funcs {
        wat.push_str(&format!(" call $f{f}"));
    }
    wat.push_str(" call $exit))");
    (wat, expected)
}

fn scheduler(slice_fuel: u64) -> Scheduler {
    Scheduler::new(SchedulerConfig {
        slice_fuel,
        ..SchedulerConfig::default()
    })
}

fn run_sliced(module: Arc<Module>, slice_fuel: u64) -> Outcome {
    smol::block_on(scheduler(slice_fuel).run(module, Invocation::default())).unwrap()
}

#[test]
fn lazy_translation_resumes_across_slices() {
    // Each function's body is about 5 KB: about 35,000 fuel to translate at wasmi's default
    // cost, so the slices below end during a translation again and again.
    let (wat, expected) = chain(12, 800);
    let wasm = wat::parse_str(&wat).unwrap();
    let mut fuel = None;
    for slice in [
        1, 3, 10, 100, 777, 1_000, 4_096, 10_000, 35_000, 100_000, 1_000_000,
    ] {
        // A fresh module each time, so every function is translated during this run.
        let module = Module::compile(&wasm, Limits::default()).unwrap();
        let first = run_sliced(module.clone(), slice);
        assert_eq!(first.result, Ok(expected), "slice {slice}");
        // Translation is not charged: a run costs the same whatever is translated already, and
        // however it is sliced.
        let again = run_sliced(module, slice);
        assert_eq!(again.result, Ok(expected), "slice {slice}, translated");
        assert_eq!(first.fuel_used, again.fuel_used, "slice {slice}");
        assert_eq!(
            *fuel.get_or_insert(first.fuel_used),
            first.fuel_used,
            "slice {slice}"
        );
    }
}

#[test]
fn concurrent_first_calls_share_one_translation() {
    let (wat, expected) = chain(8, 400);
    let module = Module::compile(&wat::parse_str(&wat).unwrap(), Limits::default()).unwrap();
    // Several runs at once on two threads, each taking turns in tiny slices: they translate
    // the same functions on their first calls, concurrently.
    let s = Arc::new(scheduler(50));
    let ex = smol::Executor::new();
    let runs: Vec<_> = (0..16)
        .map(|_| ex.spawn(s.run(module.clone(), Invocation::default())))
        .collect();
    std::thread::scope(|scope| {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        scope.spawn(|| smol::block_on(ex.run(async move { stopped.recv().await })));
        smol::block_on(ex.run(async {
            for run in runs {
                assert_eq!(run.await.unwrap().result, Ok(expected));
            }
        }));
        drop(stop);
    });
}

#[test]
fn a_bad_function_body_is_refused_at_compile_however_deep() {
    // Many good functions, then one whose body returns an i64 where it declares an i32: only
    // validation of that body catches it, and it is never called.
    let (good, _) = chain(40, 50);
    let bad = good.replacen(
        "(func (export \"_start\")",
        "(func $bad (result i32) i64.const 1) (func (export \"_start\")",
        1,
    );
    assert!(Module::compile(&wat::parse_str(&good).unwrap(), Limits::default()).is_ok());
    let refused = Module::compile(&wat::parse_str(&bad).unwrap(), Limits::default());
    assert!(
        matches!(&refused, Err(CompileError::Invalid(why)) if why.contains("type mismatch")),
        "{refused:?}"
    );
}

const HELLO: &str = r#"(module (func (export "_start")))"#;

#[test]
fn the_cache_shares_a_module_for_the_same_bytes_and_limits() {
    let cache = ModuleCache::default();
    let wasm = wat::parse_str(HELLO).unwrap();
    let a = cache.compile("a", &wasm, Limits::default()).unwrap();
    let b = cache.compile("a", &wasm, Limits::default()).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert!(Arc::ptr_eq(
        &a,
        &cache.get("a", &Limits::default()).unwrap()
    ));
    let other_limits = Limits {
        fuel: 5,
        ..Limits::default()
    };
    let c = cache.compile("a", &wasm, other_limits.clone()).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(c.limits(), &other_limits);
    let d = cache.compile("d", &wasm, Limits::default()).unwrap();
    assert!(!Arc::ptr_eq(&a, &d));
    // A refused module is not remembered.
    assert!(cache.compile("bad", b"nope", Limits::default()).is_err());
    assert!(cache.get("bad", &Limits::default()).is_none());
    assert_eq!(cache.len(), 3);
}

#[test]
fn the_cache_lets_modules_go_and_does_not_grow() {
    let cache = ModuleCache::default();
    let wasm = wat::parse_str(HELLO).unwrap();
    let kept = cache.compile("kept", &wasm, Limits::default()).unwrap();
    let weak = {
        let gone = cache.compile("gone", &wasm, Limits::default()).unwrap();
        Arc::downgrade(&gone)
    };
    // The cache alone does not keep a module alive.
    assert!(weak.upgrade().is_none());
    assert!(cache.get("gone", &Limits::default()).is_none());
    // Redeployed a thousand times, each version a new module that replaces the last.
    let mut serving = cache.compile("v0", &wasm, Limits::default()).unwrap();
    for i in 1..1000 {
        serving = cache
            .compile(&format!("v{i}"), &wasm, Limits::default())
            .unwrap();
        assert!(cache.len() <= 3, "{} entries", cache.len());
    }
    // Compiled again once no longer in use.
    let again = cache.compile("v0", &wasm, Limits::default()).unwrap();
    assert!(!Arc::ptr_eq(&again, &serving));
    assert!(Arc::ptr_eq(
        &kept,
        &cache.get("kept", &Limits::default()).unwrap()
    ));
}

#[test]
fn concurrent_compiles_of_the_same_module_share_one() {
    let cache = Arc::new(ModuleCache::default());
    let (wat, _) = chain(20, 100);
    let wasm = Arc::new(wat::parse_str(&wat).unwrap());
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, wasm, barrier) = (cache.clone(), wasm.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.compile("same", &wasm, Limits::default()).unwrap()
            })
        })
        .collect();
    let modules: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(modules.iter().all(|m| Arc::ptr_eq(m, &modules[0])));
    assert_eq!(cache.len(), 1);
}
