//! The load through the admin API, beside the clients': the operator's key-value writes and
//! reads, orders published on a topic, and a new version of an example deployed every few
//! seconds while it is being called.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use super::http::Http;
use super::stats::Stats;
use super::{Done, EXAMPLES, ROTATION, pause};
use crate::support::{modules, variant};

/// The operator's key-value writes, reads and deletes, and a look at the admin API now and
/// then.
pub(super) fn operator(addr: SocketAddr, stats: &Stats, stop: &AtomicBool, done: &Mutex<Done>) {
    let mut http = Http::new(addr);
    let mut n = 0u64;
    let mut note_written = None;
    while !stop.load(Relaxed) {
        n += 1;
        let key = format!("/_wisp/kv/default/counter/admin-{n}");
        let value = format!("value {n}");
        stats.check(
            "PUT /_wisp/kv/default/counter/KEY",
            http.admin("PUT", &key, value.as_bytes()),
            204,
            |_| true,
        );
        stats.check(
            "GET /_wisp/kv/default/counter/KEY",
            http.admin("GET", &key, b""),
            200,
            |a| a.body == value,
        );
        // Keeps the last 8 keys.
        if n > 8 {
            let old = format!("/_wisp/kv/default/counter/admin-{}", n - 8);
            stats.check(
                "DELETE /_wisp/kv/default/counter/KEY",
                http.admin("DELETE", &old, b""),
                204,
                |_| true,
            );
            if n.is_multiple_of(5) {
                stats.check(
                    "GET /_wisp/kv/default/counter/KEY (deleted)",
                    http.admin("GET", &old, b""),
                    404,
                    |_| true,
                );
            }
        }
        // Every other time a watched write, and every fourth time the delete of the last one.
        if !n.is_multiple_of(2) {
            let note = format!(r#"{{"id":"note-{n}","note":"written by the operator"}}"#);
            if stats
                .check(
                    "PUT /_wisp/kv/orders/_shared/order%2FKEY",
                    http.admin(
                        "PUT",
                        &format!("/_wisp/kv/orders/_shared/order%2Fnote-{n}"),
                        note.as_bytes(),
                    ),
                    204,
                    |_| true,
                )
                .is_some()
            {
                done.lock().unwrap().watched_writes += 1;
                note_written = Some(n);
            }
        } else if n.is_multiple_of(4)
            && let Some(written) = note_written.take()
            && stats
                .check(
                    "DELETE /_wisp/kv/orders/_shared/order%2FKEY",
                    http.admin(
                        "DELETE",
                        &format!("/_wisp/kv/orders/_shared/order%2Fnote-{written}"),
                        b"",
                    ),
                    204,
                    |_| true,
                )
                .is_some()
        {
            done.lock().unwrap().watched_writes += 1;
        }
        if n.is_multiple_of(25) {
            stats.check(
                "GET /_wisp/kv/default/counter?prefix=admin-",
                http.admin("GET", "/_wisp/kv/default/counter?prefix=admin-", b""),
                200,
                |a| {
                    a.json().is_some_and(|json| {
                        json["keys"].as_array().is_some_and(|keys| keys.len() <= 8)
                    })
                },
            );
            for path in ["/_wisp/functions", "/_wisp/topics", "/_wisp/metrics"] {
                stats.check(
                    &format!("GET {path}"),
                    http.admin("GET", path, b""),
                    200,
                    |_| true,
                );
            }
            stats.check("GET /healthz", http.get("/healthz"), 200, |a| {
                a.body == "ok\n"
            });
        }
        pause(stop, Duration::from_millis(20));
    }
}

/// Stores pending orders as the operator and publishes them on `orders` for `payment`.
pub(super) fn publisher(addr: SocketAddr, stats: &Stats, stop: &AtomicBool, done: &Mutex<Done>) {
    let mut http = Http::new(addr);
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        n += 1;
        let id = format!("pub-{n}");
        let order = format!(r#"{{"id":"{id}","item":"soak","amount":1,"status":"pending"}}"#);
        let stored = stats.check(
            "PUT /_wisp/kv/orders/_shared/order%2FID",
            http.admin(
                "PUT",
                &format!("/_wisp/kv/orders/_shared/order%2F{id}"),
                order.as_bytes(),
            ),
            204,
            |_| true,
        );
        if stored.is_some() {
            done.lock().unwrap().watched_writes += 1;
            let published = stats.check(
                "POST /_wisp/topics/orders",
                http.admin("POST", "/_wisp/topics/orders", order.as_bytes()),
                202,
                |a| a.json().is_some_and(|json| json["subscribers"] == 1),
            );
            if published.is_some() {
                done.lock().unwrap().orders.push(id);
            }
        }
        pause(stop, Duration::from_millis(50));
    }
}

/// Deploys a new version of the next example every `every`, keeping its configuration; the
/// version each one is at in the end.
pub(super) fn deployer(
    addr: SocketAddr,
    stats: &Stats,
    stop: &AtomicBool,
    every: Duration,
) -> BTreeMap<&'static str, u64> {
    let mut http = Http::new(addr);
    let mut versions: BTreeMap<&str, u64> = EXAMPLES.iter().map(|&name| (name, 1)).collect();
    let wasm: BTreeMap<&str, Vec<u8>> = EXAMPLES
        .iter()
        .map(|&name| {
            let path = modules().join(format!("{name}.wasm"));
            (name, std::fs::read(path).unwrap())
        })
        .collect();
    let mut k = 0u64;
    loop {
        pause(stop, every);
        if stop.load(Relaxed) {
            return versions;
        }
        let name = ROTATION[k as usize % ROTATION.len()];
        k += 1;
        let next = versions[name] + 1;
        let deployed = stats.check(
            "PUT /_wisp/functions/NAME",
            http.admin(
                "PUT",
                &format!("/_wisp/functions/{name}"),
                &variant(&wasm[name], k),
            ),
            200,
            |a| a.json().is_some_and(|json| json["version"] == next),
        );
        if deployed.is_some() {
            versions.insert(name, next);
            stats.deploys.fetch_add(1, Relaxed);
        }
    }
}
