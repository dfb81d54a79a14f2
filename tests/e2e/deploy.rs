//! Deploying over HTTP: the admin API, versions, durability across restarts and `kill -9`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{Reply, Server, TOKEN, TempDir, module};

fn json(reply: &Reply) -> serde_json::Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

#[test]
fn every_admin_call_needs_the_token() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    assert_eq!(server.deploy("date", "date", "route=/api/date").status, 201);
    let calls = [
        ("GET", "/_wisp/functions"),
        ("GET", "/_wisp/functions/date"),
        ("PUT", "/_wisp/functions/date"),
        ("DELETE", "/_wisp/functions/date"),
        ("GET", "/_wisp/functions/date/versions"),
        ("POST", "/_wisp/functions/date/rollback?version=1"),
        ("GET", "/_wisp/functions/date/logs"),
        ("GET", "/_wisp/metrics"),
        ("GET", "/_wisp/no/such/thing"),
    ];
    for (method, path) in calls {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic dGVzdA=="),
            Some(TOKEN),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            let reply = server.request(method, path, &headers, b"");
            assert_eq!(reply.status, 401, "{method} {path} with {auth:?}");
            assert!(!reply.body.contains("date"), "a 401 leaks: {}", reply.body);
        }
    }
    // Still there: nothing was deleted without the token.
    assert_eq!(server.get("/api/date").status, 200);
}

#[test]
fn deploy_list_show_versions_rollback_delete() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let reply = server.deploy(
        "greet",
        "hostile",
        "route=/greet/...&method=GET&env=WHO%3Done",
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    let info = json(&reply);
    assert_eq!(info["version"], 1);
    assert_eq!(info["routes"][0], "/greet/...");
    assert_eq!(info["hash"].as_str().unwrap().len(), 64);
    assert!(server.get("/greet/echo").body.contains("WHO=one"));

    let reply = server.deploy("greet", "hostile", "route=/greet/...&env=WHO%3Dtwo");
    assert_eq!(reply.status, 200);
    assert_eq!(json(&reply)["version"], 2);
    assert!(server.get("/greet/echo").body.contains("WHO=two"));

    // A redeploy with no configuration keeps the serving one.
    let wasm = std::fs::read(module("hostile")).unwrap();
    let reply = server.admin("PUT", "/_wisp/functions/greet", &wasm);
    assert_eq!(json(&reply)["version"], 3);
    assert!(server.get("/greet/echo").body.contains("WHO=two"));

    let list = json(&server.admin("GET", "/_wisp/functions", b""));
    assert_eq!(list["functions"].as_array().unwrap().len(), 1);
    assert_eq!(list["functions"][0]["name"], "greet");
    assert_eq!(list["functions"][0]["size"], wasm.len());
    let show = json(&server.admin("GET", "/_wisp/functions/greet", b""));
    assert_eq!(show["version"], 3);
    assert_eq!(show["env"]["WHO"], "two");

    let versions = json(&server.admin("GET", "/_wisp/functions/greet/versions", b""));
    assert_eq!(versions["active"], 3);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 3);

    let reply = server.admin("POST", "/_wisp/functions/greet/rollback?version=1", b"");
    assert_eq!(reply.status, 200);
    assert!(server.get("/greet/echo").body.contains("WHO=one"));
    assert_eq!(
        server
            .admin("POST", "/_wisp/functions/greet/rollback?version=9", b"")
            .status,
        404
    );
    assert_eq!(
        server
            .admin("POST", "/_wisp/functions/greet/rollback", b"")
            .status,
        400
    );

    assert_eq!(
        server.admin("DELETE", "/_wisp/functions/greet", b"").status,
        200
    );
    assert_eq!(server.get("/greet/echo").status, 404);
    assert_eq!(
        server.admin("GET", "/_wisp/functions/greet", b"").status,
        404
    );
    assert_eq!(
        server.admin("DELETE", "/_wisp/functions/greet", b"").status,
        404
    );
    // Its module file is gone with it.
    assert_eq!(
        std::fs::read_dir(data.0.join("modules")).unwrap().count(),
        0
    );
}

#[test]
fn bad_deploys_are_refused_and_the_old_version_keeps_serving() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &["--max-module-mb", "1"]);
    assert_eq!(server.deploy("date", "date", "route=/api/date").status, 201);
    let no_start = wat::parse_str("(module)").unwrap();
    let bad_import =
        wat::parse_str(r#"(module (import "env" "spawn" (func)) (func (export "_start")))"#)
            .unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "date?route=/api/date",
            b"not wasm at all".to_vec(),
            400,
            "not a WebAssembly module",
        ),
        ("date?route=/api/date", no_start, 400, "no `_start`"),
        (
            "date?route=/api/date",
            bad_import,
            400,
            "imports `env::spawn`",
        ),
        ("date?route=/api/date", vec![0; 2 << 20], 413, ""),
        (
            "Date?route=/x",
            b"\0asm".to_vec(),
            400,
            "invalid function name",
        ),
        (
            "other",
            std::fs::read(module("date")).unwrap(),
            400,
            "at least one route",
        ),
        (
            "other?route=/api/date",
            std::fs::read(module("date")).unwrap(),
            409,
            "served by function `date`",
        ),
        (
            "date?route=nope",
            std::fs::read(module("date")).unwrap(),
            400,
            "invalid route",
        ),
        (
            "date?rout=/x",
            std::fs::read(module("date")).unwrap(),
            400,
            "unknown parameter `rout`",
        ),
    ];
    for (target, body, status, says) in cases {
        let reply = server.admin("PUT", &format!("/_wisp/functions/{target}"), &body);
        assert_eq!(reply.status, status, "{target}: {reply:?}");
        assert!(reply.body.contains(says), "{target}: {}", reply.body);
        let date = server.get("/api/date");
        assert_eq!(date.status, 200, "after {target}");
        assert!(date.body.contains("now"));
    }
    let versions = json(&server.admin("GET", "/_wisp/functions/date/versions", b""));
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "no bad deploy was recorded"
    );
}

#[test]
fn chunked_and_100_continue_uploads_deploy() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let wasm = std::fs::read(module("weather")).unwrap();
    let mut stream = server.connect();
    write!(
        stream,
        "PUT /_wisp/functions/weather?route=/api/weather HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for chunk in wasm.chunks(10_000) {
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream.write_all(chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert_eq!(Reply::parse(&out).status, 201, "{out}");

    let mut stream = server.connect();
    write!(
        stream,
        "PUT /_wisp/functions/weather HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        wasm.len()
    )
    .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(&wasm).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert_eq!(json(&Reply::parse(&out))["version"], 2);
    assert_eq!(server.get("/api/weather").status, 200);
}

#[test]
fn redeploys_under_load_never_drop_a_request() {
    let data = TempDir::new();
    let server = Arc::new(Server::serve(&data.0, &[]));
    assert_eq!(
        server
            .deploy("flip", "hostile", "route=/flip/...&env=V%3D0")
            .status,
        201
    );
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            let mut count = 0;
            while !stop.load(Ordering::Relaxed) {
                let reply = server.get("/flip/echo");
                assert_eq!(reply.status, 200, "during a redeploy: {reply:?}");
                let v = reply
                    .body
                    .lines()
                    .find(|l| l.starts_with("V="))
                    .unwrap()
                    .to_string();
                seen.insert(v);
                count += 1;
            }
            (count, seen)
        })
    };
    for i in 1..=20 {
        let reply = server.deploy("flip", "hostile", &format!("route=/flip/...&env=V%3D{i}"));
        assert_eq!(reply.status, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (count, seen) = hammer.join().unwrap();
    eprintln!(
        "{count} requests during 20 redeploys, all 200, saw {} versions",
        seen.len()
    );
    assert!(seen.len() > 1, "the hammer saw the redeploys: {seen:?}");
}

#[test]
fn a_restart_keeps_every_function_version_and_rollback() {
    let data = TempDir::new();
    {
        let server = Server::serve(&data.0, &[]);
        assert_eq!(
            server
                .deploy("date", "date", "route=/api/date&cors=*")
                .status,
            201
        );
        assert_eq!(
            server
                .deploy("echo", "hostile", "route=/e/...&env=V%3Dfirst")
                .status,
            201
        );
        assert_eq!(
            server
                .deploy("echo", "hostile", "route=/e/...&env=V%3Dsecond")
                .status,
            200
        );
        let reply = server.admin("POST", "/_wisp/functions/echo/rollback?version=1", b"");
        assert_eq!(reply.status, 200);
        assert!(server.terminate().success());
    }
    let server = Server::serve(&data.0, &[]);
    let date = server.get("/api/date");
    assert_eq!(date.status, 200);
    assert_eq!(date.header("access-control-allow-origin"), Some("*"));
    assert!(server.get("/e/echo").body.contains("V=first"));
    let versions = json(&server.admin("GET", "/_wisp/functions/echo/versions", b""));
    assert_eq!(versions["active"], 1);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
}

/// Deploys `churn` one version after another until the server goes; `V` in its environment is
/// the version number each deploy will get. Returns the last acknowledged version.
fn churn(addr: std::net::SocketAddr, mut next: u64) -> Option<u64> {
    let wasm = std::fs::read(module("hostile")).unwrap();
    let mut acknowledged = None;
    loop {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return acknowledged;
        };
        let head = format!(
            "PUT /_wisp/functions/churn?route=/churn/...&env=V%3D{next} HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            wasm.len()
        );
        if stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.write_all(&wasm))
            .is_err()
        {
            return acknowledged;
        }
        let mut out = String::new();
        if stream.read_to_string(&mut out).is_err() || !out.starts_with("HTTP/1.1 20") {
            return acknowledged;
        }
        let version = json(&Reply::parse(&out))["version"].as_u64().unwrap();
        assert_eq!(version, next);
        acknowledged = Some(version);
        next += 1;
    }
}

#[test]
fn kill_9_never_loses_an_acknowledged_deploy() {
    let data = TempDir::new();
    let mut acknowledged = 0;
    for round in 0..6 {
        let server = Server::serve(&data.0, &[]);
        let mut next = 1;
        if round > 0 {
            // Everything acknowledged before the kill is back, and nothing half-written.
            let versions = json(&server.admin("GET", "/_wisp/functions/churn/versions", b""));
            let active = versions["active"].as_u64().unwrap();
            assert!(
                active >= acknowledged,
                "round {round}: active {active} < acked {acknowledged}"
            );
            assert!(
                server
                    .get("/churn/echo")
                    .body
                    .contains(&format!("V={active}"))
            );
            next = active + 1;
        }
        let addr = server.addr;
        let deployer = std::thread::spawn(move || churn(addr, next));
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        server.kill9();
        if let Some(last) = deployer.join().unwrap() {
            acknowledged = last;
        }
    }
    assert!(
        acknowledged > 5,
        "deploys were acknowledged between kills: {acknowledged}"
    );
}

#[test]
fn logs_and_metrics() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    assert_eq!(
        server.deploy("noisy", "hostile", "route=/noisy/...").status,
        201
    );
    assert_eq!(server.get("/noisy/panic").status, 500);
    let logs = server.admin("GET", "/_wisp/functions/noisy/logs", b"");
    assert_eq!(logs.status, 200);
    assert!(
        logs.body.contains("hostile: deliberate panic"),
        "{}",
        logs.body
    );
    assert!(
        logs.body.contains("wisp: stopped: trapped"),
        "{}",
        logs.body
    );
    assert!(
        logs.body.starts_with("20"),
        "lines start with their RFC 3339 time: {}",
        logs.body
    );

    // A follower gets the recent lines, then new ones as they come.
    let mut follow = server.connect();
    write!(
        follow,
        "GET /_wisp/functions/noisy/logs?follow HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    assert_eq!(server.get("/noisy/exit").status, 500);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("exited with status 3") {
        let n = follow.read(&mut buf).unwrap();
        assert!(n > 0, "the follow stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("Transfer-Encoding: chunked"), "{seen}");

    let metrics = server.admin("GET", "/_wisp/metrics", b"");
    for line in [
        "wisp_invocations_total{function=\"noisy\",status=\"5xx\"} 2",
        "wisp_invocation_duration_seconds_count{function=\"noisy\"} 2",
        "wisp_deploys_total{function=\"noisy\"} 1",
        "wisp_functions 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "missing {line}:\n{}",
            metrics.body
        );
    }
    assert_eq!(server.get("/healthz").body, "ok\n");
}

#[test]
fn the_first_start_creates_a_private_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let data = TempDir::new();
    let mut command = std::process::Command::new(crate::support::WISP);
    command
        .args(["serve", "--listen", "no-such-host.invalid:1", "--data"])
        .arg(&data.0);
    // The address cannot be bound; it is tried after the data folder and token are set up.
    let out = command.env_remove("WISP_TOKEN").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = data.0.join("admin.token");
    assert!(
        stdout.contains(&format!("created an admin token in {}", path.display())),
        "{stdout}"
    );
    let token = std::fs::read_to_string(&path).unwrap();
    assert_eq!(token.trim().len(), 64);
    assert!(!stdout.contains(token.trim()), "the token is never printed");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
