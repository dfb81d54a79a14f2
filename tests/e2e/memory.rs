//! Memory per deployed function: functions deploying the same module share its code, and a
//! version's code goes when the version goes.

use crate::support::{Server, TempDir, module, variant};

#[test]
fn functions_deploying_the_same_module_share_its_code() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let wasm = std::fs::read(module("trivial")).unwrap();
    let deploy = |name: &str, wasm: &[u8]| {
        let reply = server.admin(
            "PUT",
            &format!("/_wisp/functions/{name}?route=/{name}"),
            wasm,
        );
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_eq!(server.get(&format!("/{name}")).status, 200);
    };
    // The first one compiles the module and runs what a request runs.
    deploy("f0", &wasm);
    let before = server.rss_kib();
    for i in 1..=100 {
        deploy(&format!("f{i}"), &wasm);
    }
    let shared = server.rss_kib().saturating_sub(before);
    for i in 1..=10 {
        deploy(&format!("d{i}"), &variant(&wasm, i));
    }
    let distinct = server.rss_kib().saturating_sub(before + shared);
    eprintln!(
        "RSS per function: {} KiB shared, {} KiB distinct",
        shared / 100,
        distinct / 10
    );
    // Each of its own would bring its engine, linker and translated code: over 200 KiB for
    // `trivial`, as the distinct ones show. Sharing leaves the function's own entries (its log
    // buffer, stats, routes, registry record).
    assert!(
        distinct / 10 > 100,
        "{distinct} KiB for 10 distinct modules"
    );
    assert!(
        shared < 100 * 64,
        "{shared} KiB for 100 functions of one module"
    );
}

#[test]
fn redeploying_500_times_does_not_grow_memory() {
    // The same bytes each time: every version shares one module.
    redeploy_date_500_times(|wasm, _| wasm.to_vec());
}

#[test]
fn redeploying_new_modules_500_times_does_not_grow_memory() {
    // Unlike the same bytes redeployed, which share one module, every version here is a new
    // module with its own engine: it must go when the next version replaces it.
    redeploy_date_500_times(variant);
}

/// Deploys `version(date.wasm, i)` 500 times over, calling it now and then, and checks that
/// the server's RSS after the last deploy is where it was after the first 100.
fn redeploy_date_500_times(version: impl Fn(&[u8], u64) -> Vec<u8>) {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let wasm = std::fs::read(module("date")).unwrap();
    let mut samples = Vec::new();
    for i in 1..=500 {
        let reply = server.admin(
            "PUT",
            "/_wisp/functions/date?route=/api/date",
            &version(&wasm, i),
        );
        assert!(reply.status == 200 || reply.status == 201, "{reply:?}");
        if i % 10 == 0 {
            assert_eq!(server.get("/api/date").status, 200);
        }
        if i % 100 == 0 {
            samples.push((i, server.rss_kib()));
        }
    }
    eprintln!("RSS (KiB) after n redeploys: {samples:?}");
    let (first, last) = (samples[0].1, samples[samples.len() - 1].1);
    // Each module brings a wasmi engine with its compiled code: a leak of one per deploy would
    // add tens of MiB over 400 deploys. Allow for allocator noise only.
    assert!(
        last < first + 8 * 1024,
        "RSS grew from {first} KiB to {last} KiB"
    );
}
