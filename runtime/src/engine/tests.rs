//! The engine against small hand-written modules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

fn compile(wat: &str, limits: Limits) -> Arc<Module> {
    Module::compile(&wat::parse_str(wat).unwrap(), limits).unwrap()
}

fn run(wat: &str, limits: Limits) -> Outcome {
    run_here(compile(wat, limits), Invocation::default())
}

const WASI_WRITE: &str = r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#;

/// A module whose `_start` writes `text` to `fd` `times` times, then returns fd_write's errno
/// through `proc_exit`.
fn writer(fd: u32, text: &str, times: u32) -> String {
    format!(
        r#"(module {WASI_WRITE}
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "{text}")
          (func (export "_start") (local $i i32) (local $e i32)
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const {len}))
            (block $done (loop $again
              (br_if $done (i32.ge_u (local.get $i) (i32.const {times})))
              (local.set $e (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $again)))
            (call $exit (local.get $e))))"#,
        len = text.len()
    )
}

#[test]
fn stdout_and_stderr_are_captured() {
    let out = run(&writer(1, "hello", 2), Limits::default());
    assert_eq!(out.result, Ok(0));
    assert_eq!(out.stdout, b"hellohello");
    let out = run(&writer(2, "oops", 1), Limits::default());
    assert_eq!(out.stderr, b"oops");
    // A descriptor that is not open gets EBADF (8), not a trap.
    assert_eq!(run(&writer(7, "x", 1), Limits::default()).result, Ok(8));
}

#[test]
fn output_past_the_cap_stops_the_run() {
    let limits = Limits {
        stdout_bytes: 1000,
        ..Limits::default()
    };
    let out = run(&writer(1, "0123456789", 1000), limits);
    assert_eq!(out.result, Err(Stop::Limit(Limit::Stdout(1000))));
    assert!(out.stdout.len() <= 1000);
}

#[test]
fn bad_guest_pointers_get_efault_not_a_host_panic() {
    // An iovec that points past the end of memory, and one whose length wraps around.
    for (ptr, len) in [(65530, 100), (16, -1)] {
        let wat = format!(
            r#"(module {WASI_WRITE}
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (func (export "_start")
                (i32.store (i32.const 0) (i32.const {ptr}))
                (i32.store (i32.const 4) (i32.const {len}))
                (call $exit (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
        );
        assert_eq!(
            run(&wat, Limits::default()).result,
            Ok(21),
            "ptr {ptr} len {len}"
        );
    }
    // The iovec array itself out of bounds.
    let wat = format!(
        r#"(module {WASI_WRITE}
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (call $exit (call $fd_write (i32.const 1) (i32.const -8) (i32.const 100000) (i32.const 8)))))"#
    );
    assert_eq!(run(&wat, Limits::default()).result, Ok(21));
}

#[test]
fn fuel_is_metered_and_sliced() {
    let wat = r#"(module (func (export "_start") (loop $l (br $l))))"#;
    let limits = Limits {
        fuel: 3_000_000,
        ..Limits::default()
    };
    let out = run(wat, limits);
    assert_eq!(out.result, Err(Stop::Limit(Limit::Fuel(3_000_000))));
    // Several slices were spent, and no more than the budget.
    assert!(
        out.fuel_used <= 3_000_000 && out.fuel_used > 2_800_000,
        "{}",
        out.fuel_used
    );
}

#[test]
fn the_deadline_ends_a_run_between_slices() {
    let wat = r#"(module (func (export "_start") (loop $l (br $l))))"#;
    let limits = Limits {
        timeout: Duration::from_millis(100),
        fuel: u64::MAX,
        ..Limits::default()
    };
    let started = Instant::now();
    let out = run(wat, limits);
    assert_eq!(
        out.result,
        Err(Stop::Limit(Limit::Timeout(Duration::from_millis(100))))
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[test]
fn memory_growth_stops_at_the_cap() {
    // Grows one page at a time until refused, then traps the way an allocator's abort does.
    let wat = r#"(module (memory (export "memory") 1)
      (func (export "_start")
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable))"#;
    let limits = Limits {
        memory_bytes: 4 << 20,
        ..Limits::default()
    };
    let out = run(wat, limits);
    assert_eq!(out.result, Err(Stop::Limit(Limit::Memory(4 << 20))));
    assert_eq!(out.memory_bytes, 4 << 20);
}

#[test]
fn recursion_stops_at_the_depth_cap() {
    let wat = r#"(module (func $f (export "_start") (call $f)))"#;
    let limits = Limits {
        max_recursion_depth: 200,
        ..Limits::default()
    };
    assert_eq!(run(wat, limits).result, Err(Stop::Limit(Limit::Stack(200))));
}

/// Runs `main` on an executor of `threads` threads (the calling one included), as the server
/// runs its tasks; `main` spawns what runs beside it on the executor it is given.
fn on_executor<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
    threads: usize,
    main: impl FnOnce(Arc<smol::Executor<'static>>) -> F,
) -> T {
    let ex = Arc::new(smol::Executor::new());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let helpers: Vec<_> = (1..threads)
        .map(|_| {
            let (ex, stopped) = (ex.clone(), stopped.clone());
            std::thread::spawn(move || smol::block_on(ex.run(stopped.recv())))
        })
        .collect();
    let out = smol::block_on(ex.run(main(ex.clone())));
    drop(stop);
    for helper in helpers {
        let _ = helper.join().unwrap();
    }
    out
}

fn scheduler(max_running: usize, queue: usize, slice_fuel: u64) -> Arc<Scheduler> {
    Arc::new(Scheduler::new(SchedulerConfig {
        max_running,
        queue,
        slice_fuel,
    }))
}

/// A module that sleeps `ms` through poll_oneoff on a relative monotonic clock.
fn sleeper(ms: u64) -> String {
    format!(
        r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const {ns}))
        (call $exit (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))"#,
        ns = ms * 1_000_000
    )
}

const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

fn spin_limits() -> Limits {
    Limits {
        fuel: u64::MAX,
        timeout: Duration::from_secs(30),
        ..Limits::default()
    }
}

#[test]
fn a_sleeping_guest_does_not_hold_its_thread() {
    let started = Instant::now();
    let (quick_at, quick, sleeping) = on_executor(1, move |ex| async move {
        let s = scheduler(8, 8, DEFAULT_SLICE_FUEL);
        let sleeping = ex.spawn({
            let s = s.clone();
            async move {
                let module = compile(&sleeper(300), Limits::default());
                s.run(module, Invocation::default()).await.unwrap()
            }
        });
        smol::future::yield_now().await;
        let quick = compile(&writer(1, "hi", 1), Limits::default());
        let quick = s.run(quick, Invocation::default()).await.unwrap();
        (started.elapsed(), quick, sleeping.await)
    });
    assert_eq!(quick.stdout, b"hi");
    assert!(
        quick_at < Duration::from_millis(300),
        "the quick run waited for the sleeper"
    );
    assert_eq!(sleeping.result, Ok(0));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_long_run_yields_to_a_short_one_on_one_thread() {
    let (waited, out) = on_executor(1, |ex| async move {
        let s = scheduler(8, 8, 10_000);
        let spinning = ex.spawn({
            let s = s.clone();
            async move {
                s.run(compile(SPIN, spin_limits()), Invocation::default())
                    .await
            }
        });
        // Let the spinner take the thread first.
        smol::future::yield_now().await;
        let started = Instant::now();
        let quick = compile(&writer(1, "hi", 1), Limits::default());
        let out = s.run(quick, Invocation::default()).await.unwrap();
        // Dropping the task cancels the spinning run at its next slice.
        drop(spinning);
        (started.elapsed(), out)
    });
    assert_eq!(out.stdout, b"hi");
    assert!(
        waited < Duration::from_secs(5),
        "waited {waited:?} behind the spinner"
    );
}

#[test]
fn past_the_running_cap_runs_wait_and_past_the_queue_they_are_refused() {
    let waited = on_executor(1, |ex| async move {
        let s = scheduler(1, 1, 10_000);
        let spinning = ex.spawn({
            let s = s.clone();
            async move {
                s.run(compile(SPIN, spin_limits()), Invocation::default())
                    .await
            }
        });
        smol::future::yield_now().await;
        let waiting = ex.spawn({
            let s = s.clone();
            async move {
                let quick = compile(&writer(1, "hi", 1), Limits::default());
                s.run(quick, Invocation::default()).await
            }
        });
        smol::future::yield_now().await;
        assert_eq!(s.queued(), 1);
        let refused = s
            .run(
                compile(&writer(1, "x", 1), Limits::default()),
                Invocation::default(),
            )
            .await;
        assert_eq!(refused.err(), Some(Busy));
        // The spinner gone, the one waiting runs.
        drop(spinning);
        waiting.await.unwrap()
    });
    assert_eq!(waited.stdout, b"hi");
}

#[test]
fn a_run_that_waits_past_its_deadline_times_out_without_starting() {
    let out = on_executor(1, |ex| async move {
        let s = scheduler(1, 4, 10_000);
        let _spinning = ex.spawn({
            let s = s.clone();
            async move {
                s.run(compile(SPIN, spin_limits()), Invocation::default())
                    .await
            }
        });
        smol::future::yield_now().await;
        let short = Limits {
            timeout: Duration::from_millis(50),
            ..Limits::default()
        };
        s.run(compile(&writer(1, "y", 1), short), Invocation::default())
            .await
            .unwrap()
    });
    assert_eq!(
        out.result,
        Err(Stop::Limit(Limit::Timeout(Duration::from_millis(50))))
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn every_invocation_is_answered_when_many_arrive_at_once() {
    let answered = on_executor(2, |ex| async move {
        let s = scheduler(4, 1000, 50);
        let module = compile(&writer(1, "x", 20), Limits::default());
        let runs: Vec<_> = (0..200)
            .map(|_| {
                let (s, module) = (s.clone(), module.clone());
                ex.spawn(async move { s.run(module, Invocation::default()).await })
            })
            .collect();
        let mut answered = 0;
        for run in runs {
            assert_eq!(run.await.unwrap().stdout, [b'x'; 20]);
            answered += 1;
        }
        answered
    });
    assert_eq!(answered, 200);
}

#[test]
fn args_and_environment_reach_the_guest() {
    // Writes argv[1] to stdout, using args_sizes_get and args_get.
    let wat = format!(
        r#"(module {WASI_WRITE}
          (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (drop (call $args_get (i32.const 0) (i32.const 64)))
            (i32.store (i32.const 32) (i32.load (i32.const 4)))
            (i32.store (i32.const 36) (i32.const 5))
            (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))))"#
    );
    let invocation = Invocation {
        args: vec!["prog".into(), "world".into()],
        ..Default::default()
    };
    let out = run_here(compile(&wat, Limits::default()), invocation);
    assert_eq!(out.stdout, b"world");
}

#[test]
fn modules_are_refused_with_the_reason() {
    let refuse =
        |wat: &str, limits| Module::compile(&wat::parse_str(wat).unwrap(), limits).unwrap_err();
    assert_eq!(
        Module::compile(b"nope", Limits::default()).unwrap_err(),
        CompileError::NotWasm
    );
    assert_eq!(refuse("(module)", Limits::default()), CompileError::NoStart);
    assert_eq!(
        refuse(
            r#"(module (func (export "_start") (param i32)))"#,
            Limits::default()
        ),
        CompileError::NoStart
    );
    assert_eq!(
        refuse(
            r#"(module (import "wisp" "nope" (func)) (func (export "_start")))"#,
            Limits::default()
        ),
        CompileError::UnknownImport {
            module: "wisp".into(),
            name: "nope".into()
        }
    );
    let wrong_signature = r#"(module (import "wasi_snapshot_preview1" "fd_write" (func))
        (func (export "_start")))"#;
    assert!(matches!(
        refuse(wrong_signature, Limits::default()),
        CompileError::Invalid(_)
    ));
    let big = r#"(module (memory (export "memory") 100) (func (export "_start")))"#;
    let limits = Limits {
        memory_bytes: 1 << 20,
        ..Limits::default()
    };
    assert!(matches!(
        refuse(big, limits),
        CompileError::MemoryTooLarge { .. }
    ));
    assert!(matches!(
        Module::compile(b"\0asm\x01\0\0\0\x99", Limits::default()).unwrap_err(),
        CompileError::Invalid(_)
    ));
}

/// Found by `tests/fuzz.sh` (smith_run): an endless tail-call loop. Each `return_call` must
/// reuse its frame, in the guest and in the host: the run ends at its fuel limit, not in a
/// native stack overflow.
#[test]
fn an_endless_tail_call_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 5_000_000,
        ..Limits::default()
    };
    for body in [
        "(return_call $f)",
        "(return_call_indirect (type $t) (i32.const 0))",
    ] {
        let wat = format!(
            r#"(module
                 (type $t (func))
                 (table 1 funcref) (elem (i32.const 0) $f)
                 (memory (export "memory") 1)
                 (func $f (type $t) {body})
                 (func (export "_start") (call $f)))"#
        );
        let outcome = run(&wat, limits.clone());
        assert!(
            matches!(outcome.result, Err(Stop::Limit(Limit::Fuel(_)))),
            "{body}: {:?}",
            outcome.result
        );
    }
}
