//! A fleet: three `wisp serve` processes on loopback joined through a real `redis-server`
//! (`--redis`). A deploy, rollback or delete made on one reaches the others; a device that was
//! off catches up; without Redis, functions serve on and changes are refused.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::redis_server::Redis;
use crate::support::{Reply, Server, TOKEN, TempDir, WISP, eventually};

fn json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

/// A device of the fleet in `redis`, with its data in `data`.
fn device(redis: &Redis, data: &TempDir, name: &str) -> Server {
    device_env(redis, data, name, &[])
}

fn device_env(redis: &Redis, data: &TempDir, name: &str, env: &[(&str, &str)]) -> Server {
    Server::serve_env(&data.0, &["--redis", &redis.url(), "--device", name], env)
}

/// Deploys the `hostile` module as `greet` on `/greet/...`, where `/greet/echo` shows `WHO`.
fn deploy_greet(server: &Server, who: &str) -> Reply {
    server.deploy(
        "greet",
        "hostile",
        &format!("route=/greet/...&env=WHO%3D{who}"),
    )
}

/// Whether `server` answers `/greet/echo` with `WHO=who`.
fn greets(server: &Server, who: &str) -> bool {
    let reply = server.get("/greet/echo");
    reply.status == 200 && reply.body.contains(&format!("WHO={who}\n"))
}

/// Waits until every one of `servers` greets `who`.
fn all_greet(servers: &[&Server], who: &str) {
    for (i, server) in servers.iter().enumerate() {
        eventually(5, &format!("device {i} to greet {who}"), || {
            greets(server, who).then_some(())
        });
    }
}

/// `(version, hash, deployed_at, active)` of each kept version of `name` on `server`.
fn versions(server: &Server, name: &str) -> Vec<(u64, String, u64, bool)> {
    let reply = server.admin("GET", &format!("/_wisp/functions/{name}/versions"), b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    json(&reply)["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["hash"].as_str().unwrap().to_string(),
                v["deployed_at"].as_u64().unwrap(),
                v["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The fleet's devices as `server` lists them, once every one of `names` shows `functions`
/// (a JSON object of name to version).
fn listed(server: &Server, names: &[&str], functions: Value) -> Value {
    eventually(10, "the devices' heartbeats", || {
        let list = json(&server.admin("GET", "/_wisp/fleet", b""));
        let devices = list["devices"].as_array().unwrap();
        let shown: Vec<&str> = devices
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        let all = shown == names && devices.iter().all(|d| d["functions"] == functions);
        all.then_some(list)
    })
}

/// Milliseconds from a deploy's answer on `from` to the first request `to` answers with it.
fn propagation(from: &Server, to: &Server, who: &str) -> f64 {
    let reply = deploy_greet(from, who);
    assert!(matches!(reply.status, 200 | 201), "{reply:?}");
    let answered = Instant::now();
    while !greets(to, who) {
        assert!(
            answered.elapsed() < Duration::from_secs(2),
            "not served within 2 s"
        );
    }
    answered.elapsed().as_secs_f64() * 1000.0
}

#[test]
fn a_change_on_any_device_reaches_every_device_in_one_order() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let a = device(&redis, &data[0], "a");
    let b = device(&redis, &data[1], "b");
    let c = device(&redis, &data[2], "c");

    // A deploy to one is served by the other two within 2 s.
    let reply = a.deploy("date", "date", "route=/api/date&method=GET");
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(json(&reply)["version"], 1);
    let answered = Instant::now();
    for other in [&b, &c] {
        while other.get("/api/date").status != 200 {
            assert!(
                answered.elapsed() < Duration::from_secs(2),
                "not served in 2 s"
            );
        }
    }

    // Versions made on different devices are numbered by the fleet, the same everywhere.
    assert_eq!(deploy_greet(&b, "one").status, 201);
    let reply = deploy_greet(&c, "two");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(json(&reply)["version"], 2);
    all_greet(&[&a, &b, &c], "two");
    let on_a = versions(&a, "greet");
    assert_eq!(on_a.len(), 2);
    assert_eq!(versions(&b, "greet"), on_a);
    assert_eq!(versions(&c, "greet"), on_a);

    // A rollback, made on another device, too.
    let reply = a.admin("POST", "/_wisp/functions/greet/rollback?version=1", b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    all_greet(&[&a, &b, &c], "one");
    eventually(5, "the rollback everywhere", || {
        (versions(&b, "greet") == versions(&a, "greet")
            && versions(&c, "greet") == versions(&a, "greet"))
        .then_some(())
    });
    // Checks that fail on the device refuse the change before it is recorded.
    let reply = b.admin("POST", "/_wisp/functions/greet/rollback?version=9", b"");
    assert_eq!(reply.status, 404, "{reply:?}");
    let reply = b.deploy("other", "date", "route=/api/date");
    assert_eq!(reply.status, 409, "{reply:?}");
    let reply = b.admin("PUT", "/_wisp/functions/bad?route=/bad", b"not wasm");
    assert_eq!(reply.status, 400, "{reply:?}");

    // The fleet lists its devices, with what each serves.
    let list = listed(
        &c,
        &["a", "b", "c"],
        serde_json::json!({"date": 1, "greet": 1}),
    );
    assert_eq!(list["fleet"], "default");
    assert_eq!(list["connected"], true);
    for d in list["devices"].as_array().unwrap() {
        assert_eq!(d["state"], "up", "{d}");
        assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            d["address"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:")
        );
        assert!(d["skipped"].as_array().unwrap().is_empty(), "{d}");
    }
    let out = Command::new(WISP)
        .arg("fleet")
        .env("WISP_SERVER", format!("http://{}", a.addr))
        .env("WISP_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[1],
        [
            "DEVICE",
            "STATE",
            "ADDRESS",
            "VERSION",
            "FUNCTIONS",
            "LAST",
            "SEEN"
        ],
        "{text}"
    );
    for (row, name) in rows[2..].iter().zip(["a", "b", "c"]) {
        assert_eq!(row[..2], [name, "up"], "{text}");
        assert_eq!(row[4], "date@1,greet@1", "{text}");
    }
    assert!(a.get("/healthz").body.contains("fleet default: connected"));
    assert_eq!(
        a.metric("wisp_fleet_connected{fleet=\"default\",device=\"a\"}"),
        Some(1.0)
    );

    // A delete, made on a third device.
    assert_eq!(c.admin("DELETE", "/_wisp/functions/greet", b"").status, 200);
    for server in [&a, &b, &c] {
        eventually(5, "greet gone", || {
            (server.get("/greet/echo").status == 404).then_some(())
        });
    }
    // Its numbers start again, as on a device alone.
    assert_eq!(json(&deploy_greet(&a, "three"))["version"], 1);
    all_greet(&[&a, &b, &c], "three");

    // Deploy propagation: from a deploy's answer on one device to the first request another
    // serves with it.
    let mut times: Vec<f64> = (0..10)
        .map(|i| propagation(&a, &c, &format!("p{i}")))
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "fleet: deploy propagation a -> c: min {:.1} ms, median {:.1} ms, max {:.1} ms (10 deploys)",
        times[0], times[5], times[9]
    );
}

#[test]
fn a_device_that_was_off_catches_up_in_order() {
    let mut redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let a = device(&redis, &data[0], "a");
    let b = device(&redis, &data[1], "b");
    let c = device(&redis, &data[2], "c");
    assert_eq!(deploy_greet(&a, "one").status, 201);
    all_greet(&[&a, &b, &c], "one");

    assert!(c.terminate().success());
    let list = listed(&a, &["a", "b", "c"], serde_json::json!({"greet": 1}));
    assert_eq!(list["devices"][2]["state"], "stopped");
    assert_eq!(deploy_greet(&b, "two").status, 200);
    assert_eq!(deploy_greet(&a, "three").status, 200);
    let reply = b.admin("POST", "/_wisp/functions/greet/rollback?version=2", b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = a.deploy("date", "date", "route=/api/date");
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(b.admin("DELETE", "/_wisp/functions/date", b"").status, 200);
    let reply = a.deploy("date", "date", "route=/api/now");
    assert_eq!(reply.status, 201, "{reply:?}");

    // Back, it applies what it missed, in order, and serves what the others serve.
    let c = device(&redis, &data[2], "c");
    all_greet(&[&c], "two");
    eventually(5, "date on c", || {
        (c.get("/api/now").status == 200).then_some(())
    });
    assert_eq!(c.get("/api/date").status, 404);
    assert_eq!(versions(&c, "greet"), versions(&a, "greet"));
    assert_eq!(versions(&c, "date"), versions(&b, "date"));
    listed(
        &b,
        &["a", "b", "c"],
        serde_json::json!({"date": 1, "greet": 2}),
    );

    // It restarts and serves without Redis, from its own registry.
    redis.kill();
    assert!(c.terminate().success());
    let c = device(&redis, &data[2], "c");
    assert!(greets(&c, "two"));
    assert_eq!(c.get("/api/now").status, 200);
}

#[test]
fn without_redis_functions_serve_changes_are_refused_and_the_fleet_recovers() {
    let mut redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let a = device(&redis, &data[0], "a");
    let b = device(&redis, &data[1], "b");
    let c = device(&redis, &data[2], "c");
    assert_eq!(deploy_greet(&a, "one").status, 201);
    all_greet(&[&a, &b, &c], "one");

    redis.kill();
    for server in [&a, &b, &c] {
        assert!(greets(server, "one"));
        eventually(10, "healthz to tell", || {
            let reply = server.get("/healthz");
            assert_eq!(reply.status, 200);
            reply
                .body
                .contains("fleet default: disconnected")
                .then_some(())
        });
    }
    let reply = deploy_greet(&b, "two");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        json(&reply)["error"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{reply:?}"
    );
    assert_eq!(reply.header("retry-after"), Some("5"));
    let reply = c.admin("DELETE", "/_wisp/functions/greet", b"");
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(
        b.metric("wisp_fleet_connected{fleet=\"default\",device=\"b\"}"),
        Some(0.0)
    );
    let list = json(&b.admin("GET", "/_wisp/fleet", b""));
    assert_eq!(list["connected"], false);
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    // What the dashboard shows of the device.
    let device = json(&b.admin("GET", "/_wisp/device", b""));
    assert_eq!(device["store"], "redis");
    let fleet = serde_json::json!({ "name": "default", "device": "b", "connected": false });
    assert_eq!(device["fleet"], fleet);
    // Nothing changed anywhere.
    for server in [&a, &b, &c] {
        assert!(greets(server, "one"));
    }

    // Redis back (its data kept): the devices reconnect, and the next deploy is version 2.
    redis.restart();
    for server in [&a, &b, &c] {
        eventually(10, "the fleet to reconnect", || {
            let body = server.get("/healthz").body;
            body.contains("fleet default: connected").then_some(())
        });
    }
    let reply = deploy_greet(&b, "two");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(json(&reply)["version"], 2);
    all_greet(&[&a, &b, &c], "two");
    assert!(
        b.metric("wisp_fleet_reconnects_total{fleet=\"default\",device=\"b\"}")
            .unwrap()
            >= 1.0
    );
}

#[test]
fn a_device_away_longer_than_the_log_rebuilds_from_the_snapshot() {
    let redis = Redis::start();
    let env = [("WISP_FLEET_LOG_LEN", "3")];
    let data: Vec<TempDir> = (0..2).map(|_| TempDir::new()).collect();
    let a = device_env(&redis, &data[0], "a", &env);
    let b = device_env(&redis, &data[1], "b", &env);
    assert_eq!(a.deploy("date", "date", "route=/api/date").status, 201);
    assert_eq!(deploy_greet(&a, "one").status, 201);
    let gone = json(&a.deploy("gone", "trivial", "route=/gone"));
    let gone = format!("wisp:{{default}}:module:{}", gone["hash"].as_str().unwrap());
    assert_eq!(a.admin("DELETE", "/_wisp/functions/gone", b"").status, 200);
    all_greet(&[&b], "one");

    assert!(b.terminate().success());
    for who in ["two", "three", "four", "five"] {
        assert_eq!(deploy_greet(&a, who).status, 200);
    }
    assert_eq!(a.admin("DELETE", "/_wisp/functions/date", b"").status, 200);
    assert_eq!(a.deploy("clock", "date", "route=/api/clock").status, 201);
    let length: u64 = redis::cmd("XLEN")
        .arg("wisp:{default}:registry")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(length, 3);

    let exists = |key: &str| -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query(&mut redis.connection())
            .unwrap()
    };
    assert!(exists(&gone));

    let b = device_env(&redis, &data[1], "b", &env);
    all_greet(&[&b], "five");
    // The module only trimmed entries named goes from Redis (each device collects at start);
    // those the log or the snapshot name stay.
    eventually(5, "the unneeded module to go", || {
        (!exists(&gone)).then_some(())
    });
    let modules: Vec<String> = redis::cmd("KEYS")
        .arg("wisp:{default}:module:*")
        .query(&mut redis.connection())
        .unwrap();
    assert_eq!(modules.len(), 2, "{modules:?}");
    eventually(5, "clock on b", || {
        (b.get("/api/clock").status == 200).then_some(())
    });
    assert_eq!(b.get("/api/date").status, 404);
    assert_eq!(versions(&b, "greet")[..1], versions(&a, "greet")[..1]);
    assert_eq!(
        versions(&b, "greet").last().unwrap(),
        versions(&a, "greet").last().unwrap()
    );
}

#[test]
fn a_change_a_device_cannot_apply_is_skipped_there_and_shown() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..2).map(|_| TempDir::new()).collect();
    // b served a function of its own on /x before it joined the fleet.
    {
        let alone = Server::serve(&data[1].0, &[]);
        assert_eq!(alone.deploy("mine", "date", "route=/x/...").status, 201);
        assert!(alone.terminate().success());
    }
    let a = device(&redis, &data[0], "a");
    let b = device(&redis, &data[1], "b");
    let reply = a.deploy("theirs", "hostile", "route=/x/...");
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(a.get("/x/echo").status, 200);
    let list = eventually(10, "b's skip in the listing", || {
        let list = json(&a.admin("GET", "/_wisp/fleet", b""));
        let b = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "b")?
            .clone();
        (!b["skipped"].as_array()?.is_empty()).then_some(b)
    });
    let skip = &list["skipped"][0];
    assert_eq!(skip["function"], "theirs");
    assert!(
        skip["error"].as_str().unwrap().contains("`/x/...`"),
        "{skip}"
    );
    assert_eq!(list["functions"], serde_json::json!({"mine": 1}));
    // b goes on with the entries after it.
    assert_eq!(a.deploy("date", "date", "route=/api/date").status, 201);
    eventually(5, "date on b", || {
        (b.get("/api/date").status == 200).then_some(())
    });
    assert_eq!(
        b.metric("wisp_fleet_entries_skipped_total{fleet=\"default\",device=\"b\"}"),
        Some(1.0)
    );
}
