//! Recycled instances against fresh ones: every invocation must see exactly what a fresh
//! instance would, whatever the ones before it did.

use std::sync::Arc;

use super::*;

/// Bumps a mutable global and a byte of memory, writes both and its argv, then does what its
/// first argument's first letter says: `t` traps, `g` grows memory, `e` exits 3, `w` writes
/// all over a second page, anything else returns.
const STATEFUL: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (global $g (mut i32) (i32.const 0))
  (global $h (mut i64) (i64.const 40))
  (data (i32.const 100) "\00")
  (func (export "_start") (local $first i32) (local $i i32)
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (global.set $h (i64.add (global.get $h) (i64.const 2)))
    (i32.store8 (i32.const 100) (i32.add (i32.load8_u (i32.const 100)) (i32.const 1)))
    (drop (call $sizes (i32.const 200) (i32.const 204)))
    (drop (call $args (i32.const 300) (i32.const 400)))
    (i32.store8 (i32.const 500) (global.get $g))
    (i32.store8 (i32.const 501) (i32.load8_u (i32.const 100)))
    (i32.store8 (i32.const 502) (i32.wrap_i64 (global.get $h)))
    ;; a byte of the second page: zero in a fresh instance
    (i32.store8 (i32.const 503) (i32.load8_u (i32.const 70000)))
    (i32.store (i32.const 600) (i32.const 500))
    (i32.store (i32.const 604) (i32.const 4))
    (i32.store (i32.const 608) (i32.const 400))
    (i32.store (i32.const 612) (i32.load (i32.const 204)))
    (drop (call $fd_write (i32.const 1) (i32.const 600) (i32.const 2) (i32.const 700)))
    (local.set $first (i32.load8_u (i32.load (i32.const 304))))
    (if (i32.eq (local.get $first) (i32.const 116)) (then unreachable))
    (if (i32.eq (local.get $first) (i32.const 103)) (then (drop (memory.grow (i32.const 1)))))
    (if (i32.eq (local.get $first) (i32.const 101)) (then (call $exit (i32.const 3))))
    (if (i32.eq (local.get $first) (i32.const 119))
      (then (loop $l
        (i32.store8 (i32.add (i32.const 65536) (local.get $i)) (i32.const 7))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 65536))))))))"#;

fn compile(wat: &str) -> Arc<Module> {
    Module::compile(&wat::parse_str(wat).unwrap(), Limits::default()).unwrap()
}

fn invocation(arg: &str) -> Invocation {
    Invocation {
        args: vec!["m".into(), arg.into()],
        ..Invocation::default()
    }
}

/// What a fresh instance writes for `arg`.
fn expected(arg: &str) -> Vec<u8> {
    let mut out = vec![1, 1, 42, 0];
    out.extend_from_slice(b"m\0");
    out.extend_from_slice(arg.as_bytes());
    out.push(0);
    out
}

#[test]
fn recycled_instances_see_what_fresh_ones_do() {
    let module = compile(STATEFUL);
    let mut state = 0x1234_5678_9abc_def1_u64;
    let mut reused = 0;
    for i in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let arg = match state % 6 {
            0 => format!("trap-{i}"),
            1 => format!("grow-{i}"),
            2 => format!("exit-{i}"),
            3 => format!("write-{i}"),
            _ => format!("plain-{i}-{}", "x".repeat((state % 50) as usize)),
        };
        reused += module.spares();
        let out = run_here(module.clone(), invocation(&arg));
        assert_eq!(out.stdout, expected(&arg), "run {i}: {arg}");
        let result = match arg.as_bytes()[0] {
            b't' => out.result.is_err(),
            b'e' => out.result == Ok(3),
            _ => out.result == Ok(0),
        };
        assert!(result, "run {i}: {arg}: {:?}", out.result);
    }
    // Most runs reused an instance: the plain and write ones give theirs back.
    assert!(
        reused > 500,
        "only {reused} of 2000 runs found an instance to reuse"
    );
}

#[test]
fn a_module_that_changes_its_table_gets_fresh_instances() {
    let module = compile(
        r#"(module
          (memory (export "memory") 1)
          (table 1 funcref)
          (func $f)
          (func (export "_start") (table.set (i32.const 0) (ref.func $f)))
          (elem declare func $f))"#,
    );
    for _ in 0..3 {
        assert_eq!(
            run_here(module.clone(), Invocation::default()).result,
            Ok(0)
        );
    }
    assert_eq!(module.spares(), 0);
}
