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

#[test]
fn a_sleeping_guest_does_not_hold_its_worker() {
    // `_start` sleeps 300 ms through poll_oneoff on a relative monotonic clock.
    let sleeper = r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const 300000000))
        (call $exit (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))"#;
    let pool = Pool::new(PoolConfig {
        workers: 1,
        ..PoolConfig::default()
    });
    let started = Instant::now();
    let sleeping = pool
        .submit(compile(sleeper, Limits::default()), Invocation::default())
        .unwrap();
    let quick = compile(&writer(1, "hi", 1), Limits::default());
    let out = pool.submit(quick, Invocation::default()).unwrap().wait();
    assert_eq!(out.stdout, b"hi");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the quick run waited for the sleeper"
    );
    assert_eq!(sleeping.wait().result, Ok(0));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_long_run_yields_to_a_short_one_on_a_single_worker() {
    let spin = r#"(module (func (export "_start") (loop $l (br $l))))"#;
    let limits = Limits {
        fuel: u64::MAX,
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let pool = Pool::new(PoolConfig {
        workers: 1,
        slice_fuel: 10_000,
        ..PoolConfig::default()
    });
    let spinning = pool
        .submit(compile(spin, limits), Invocation::default())
        .unwrap();
    let quick = compile(&writer(1, "hi", 1), Limits::default());
    let out = wait_at_most(pool.submit(quick, Invocation::default()).unwrap());
    assert_eq!(out.stdout, b"hi");
    // Dropping the ticket cancels the spinning run at its next slice; dropping the pool then
    // joins the worker, which it could not if the run went on.
    drop(spinning);
    drop(pool);
}

#[test]
fn every_invocation_is_answered_when_many_arrive_at_once() {
    // Workers sleep and wake as the queue fills and empties; a lost wake-up would leave an
    // invocation unanswered.
    let pool = Arc::new(Pool::new(PoolConfig {
        workers: 2,
        slice_fuel: 50,
        ..PoolConfig::default()
    }));
    let module = compile(&writer(1, "x", 20), Limits::default());
    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let (pool, module) = (pool.clone(), module.clone());
            std::thread::spawn(move || {
                for round in 0..50 {
                    let tickets: Vec<_> = (0..round % 7 + 1)
                        .map(|_| pool.submit(module.clone(), Invocation::default()).unwrap())
                        .collect();
                    for ticket in tickets {
                        assert_eq!(wait_at_most(ticket).stdout, [b'x'; 20]);
                    }
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
}

#[test]
fn dropping_the_pool_right_after_the_last_outcome_joins_every_worker() {
    // The last outcome can reach its receiver a moment before its worker has done with it; the
    // pool dropped in that moment must still stop every worker, not leave some waiting.
    let module = compile(&writer(1, "x", 1), Limits::default());
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..300 {
            let pool = Pool::new(PoolConfig {
                workers: 4,
                ..PoolConfig::default()
            });
            let tickets: Vec<_> = (0..8)
                .map(|_| pool.submit(module.clone(), Invocation::default()).unwrap())
                .collect();
            tickets
                .into_iter()
                .for_each(|t| assert_eq!(t.wait().stdout, b"x"));
            drop(pool);
        }
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(120))
        .expect("a dropped pool did not join its workers within 120 s");
}

/// The outcome, or a test failure instead of a hang.
fn wait_at_most(ticket: Ticket) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(ticket.wait()));
    rx.recv_timeout(Duration::from_secs(60))
        .expect("no outcome within 60 s: the pool lost a wake-up")
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
