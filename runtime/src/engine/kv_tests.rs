//! The `wisp` key-value imports against hand-written hostile and honest modules.

use std::sync::Arc;

use super::*;
use crate::store::{Embedded, Grants, Store};

fn grants(function: &str) -> (std::path::PathBuf, Arc<Grants>) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wisp-kv-abi-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn Store> = Arc::new(Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap());
    (
        dir,
        Arc::new(Grants::new(&store, function, &["default".into()], &[])),
    )
}

/// Runs `body` as `_start` with the kv imports, memory holding "default" at 0 and "key" at 16,
/// and returns the i32 the body leaves, through proc_exit.
fn call(body: &str, kv: &Arc<Grants>) -> (i32, Outcome) {
    let wat = format!(
        r#"(module
          (import "wisp" "kv_get" (func $get (param i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wisp" "kv_set" (func $set (param i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wisp" "kv_delete" (func $delete (param i32 i32 i32 i32) (result i32)))
          (import "wisp" "kv_exists" (func $exists (param i32 i32 i32 i32) (result i32)))
          (import "wisp" "kv_increment" (func $incr (param i32 i32 i32 i32 i64 i32) (result i32)))
          (import "wisp" "kv_compare_and_swap"
            (func $cas (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wisp" "kv_list" (func $list (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "default")
          (data (i32.const 16) "key")
          (data (i32.const 32) "value")
          (func (export "_start") (call $exit {body})))"#
    );
    let module = Module::compile(&wat::parse_str(wat).unwrap(), Limits::default()).unwrap();
    let invocation = Invocation {
        kv: Some(kv.clone()),
        ..Invocation::default()
    };
    let outcome = run_here(module, invocation);
    (*outcome.result.as_ref().unwrap(), outcome)
}

const SET: &str = "(call $set (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 32) (i32.const 5))";

#[test]
fn operations_reach_the_store() {
    let (dir, kv) = grants("f");
    let (code, outcome) = call(SET, &kv);
    assert_eq!(code, 0);
    assert!(outcome.kv_wrote);
    let get = "(call $get (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 100) (i32.const 2))";
    // The whole length comes back even when the buffer is shorter.
    assert_eq!(call(get, &kv).0, 5);
    let exists = "(call $exists (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3))";
    let (code, outcome) = call(exists, &kv);
    assert_eq!(code, 1);
    assert!(!outcome.kv_wrote, "a read is not a write");
    let incr = "(drop (call $incr (i32.const 0) (i32.const 7) (i32.const 48) (i32.const 1) (i64.const 41) (i32.const 200)))
                (call $incr (i32.const 0) (i32.const 7) (i32.const 48) (i32.const 1) (i64.const 1) (i32.const 200))
                (drop) (i32.load (i32.const 200))";
    assert_eq!(call(&format!("(block (result i32) {incr})"), &kv).0, 42);
    assert_eq!(
        kv.get(b"default")
            .unwrap()
            .get(b"\0")
            .wait()
            .unwrap()
            .as_deref(),
        Some(&b"42"[..])
    );
    // Swap "value" for "key" only if it is still "value".
    let cas = "(call $cas (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 32) (i32.const 5) (i32.const 16) (i32.const 3))";
    assert_eq!(call(cas, &kv).0, 1);
    assert_eq!(call(cas, &kv).0, 0);
    // Two keys, "\0" and "key", listed into a buffer at 300.
    let list = "(call $list (i32.const 0) (i32.const 7) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 64))";
    assert_eq!(call(list, &kv).0, 2);
    let tiny = "(call $list (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 4))";
    assert_eq!(call(tiny, &kv).0, -7, "BUFFER_TOO_SMALL");
    let delete = "(call $delete (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3))";
    assert_eq!(call(delete, &kv).0, 1);
    assert_eq!(call(delete, &kv).0, 0);
    assert_eq!(call(get, &kv).0, -1, "NOT_FOUND");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn hostile_arguments_get_error_codes() {
    let (dir, kv) = grants("f");
    let cases = [
        // A key past the end of memory, and a length that wraps the address space.
        (
            "(call $set (i32.const 0) (i32.const 7) (i32.const -16) (i32.const 64) (i32.const 32) (i32.const 5))",
            -5,
        ),
        (
            "(call $set (i32.const 0) (i32.const 7) (i32.const 16) (i32.const -1) (i32.const 32) (i32.const 5))",
            -5,
        ),
        (
            "(call $get (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 65530) (i32.const 100))",
            -5,
        ),
        (
            "(call $incr (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i64.const 1) (i32.const 65533))",
            -5,
        ),
        (
            "(call $list (i32.const 0) (i32.const 7) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 65000) (i32.const 1000))",
            -5,
        ),
        // A store that is not granted: "key" names none.
        (
            "(call $set (i32.const 16) (i32.const 3) (i32.const 16) (i32.const 3) (i32.const 32) (i32.const 5))",
            -2,
        ),
        // An empty key, a key over 1,024 bytes, a value over 1 MiB (memory grown to fit).
        (
            "(call $set (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 0) (i32.const 32) (i32.const 5))",
            -3,
        ),
        (
            "(call $set (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 1025) (i32.const 32) (i32.const 5))",
            -3,
        ),
        (
            "(block (result i32) (drop (memory.grow (i32.const 17))) (call $set (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 0) (i32.const 1048577)))",
            -4,
        ),
        // Incrementing "value".
        (
            "(block (result i32) (drop (call $set (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i32.const 32) (i32.const 5))) (call $incr (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3) (i64.const 1) (i32.const 200)))",
            -6,
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(call(body, &kv).0, expected, "{body}");
    }
    // Without any grant, every store is missing.
    let none = Arc::new(Grants::default());
    assert_eq!(call(SET, &none).0, -2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn each_operation_costs_fuel() {
    let (dir, kv) = grants("f");
    let exists = "(call $exists (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3))";
    let (_, outcome) = call(exists, &kv);
    assert!(outcome.fuel_used >= KV_OP_FUEL, "{}", outcome.fuel_used);
    std::fs::remove_dir_all(dir).unwrap();
}
