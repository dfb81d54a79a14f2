//! Hostile functions: each is stopped at its limit with a clear status and log line, and a
//! normal request served at the same time succeeds.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::{Reply, Server, examples, function};

/// Starts `path` on its own connection; the reply comes back through the handle.
fn in_background(server: &Server, path: &str) -> std::thread::JoinHandle<Reply> {
    let mut stream = server.connect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    std::thread::spawn(move || {
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        Reply::parse(&out)
    })
}

/// Runs `path` while a normal request is served; returns the hostile reply.
fn hostile_beside_normal(server: &Server, path: &str) -> Reply {
    let hostile = in_background(server, path);
    let normal = server.get("/api/date");
    assert_eq!(
        normal.status, 200,
        "a normal request beside {path}: {normal:?}"
    );
    hostile.join().unwrap()
}

/// Enough fuel for `/hostile/spin` to compute for seconds: the default budget is about half a
/// second of a desktop core.
const SPIN_FUEL: &str = "1000000000000";

fn limited(args: &[&str]) -> Server {
    Server::start(&examples(), args)
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let server = limited(&["--fuel", "50000000", "--timeout-ms", "60000"]);
    let reply = hostile_beside_normal(&server, "/hostile/loop");
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("fuel limit of 50000000 exhausted"),
        "{}",
        reply.body
    );
}

#[test]
fn an_endless_loop_meets_its_deadline() {
    // Fuel enough for seconds of spinning: the deadline, not the fuel, must stop it.
    let server = limited(&["--timeout-ms", "300", "--fuel", SPIN_FUEL]);
    let started = Instant::now();
    let reply = hostile_beside_normal(&server, "/hostile/loop");
    assert_eq!(reply.status, 504);
    assert!(
        reply.body.contains("deadline of 300 ms passed"),
        "{}",
        reply.body
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let server = limited(&["--memory-mb", "16"]);
    let reply = hostile_beside_normal(&server, "/hostile/memory");
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("memory limit of 16384 KiB reached"),
        "{}",
        reply.body
    );
}

#[test]
fn deep_recursion_hits_the_stack_cap() {
    let server = limited(&[]);
    let reply = hostile_beside_normal(&server, "/hostile/recurse-deep");
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .contains("stack limit of 1024 nested calls reached"),
        "{}",
        reply.body
    );
    // Recursion that overflows the guest's own shadow stack first is a trap, still contained.
    let reply = hostile_beside_normal(&server, "/hostile/recurse");
    assert_eq!(reply.status, 500);
    assert!(reply.body.contains("stopped"), "{}", reply.body);
}

#[test]
fn an_output_flood_hits_the_output_caps() {
    let server = limited(&["--stdout-kb", "256", "--stderr-kb", "16"]);
    let reply = hostile_beside_normal(&server, "/hostile/flood");
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("stdout limit of 262144 bytes exceeded"),
        "{}",
        reply.body
    );
    let reply = hostile_beside_normal(&server, "/hostile/stderr-flood");
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("stderr limit of 16384 bytes exceeded"),
        "{}",
        reply.body
    );
}

#[test]
fn traps_panics_and_exits_are_contained() {
    let server = limited(&[]);
    for (path, says) in [
        ("/hostile/trap", "trapped"),
        ("/hostile/panic", "trapped"),
        ("/hostile/exit", "exited with status 3"),
    ] {
        let reply = hostile_beside_normal(&server, path);
        assert_eq!(reply.status, 500, "{path}");
        assert!(reply.body.contains(says), "{path}: {}", reply.body);
    }
}

#[test]
fn one_worker_interleaves_a_long_computation_with_short_requests() {
    let server = limited(&[
        "--workers",
        "1",
        "--timeout-ms",
        "20000",
        "--fuel",
        SPIN_FUEL,
    ]);
    let long = in_background(&server, "/hostile/spin?ms=3000");
    // Let the long run take the only worker first.
    std::thread::sleep(Duration::from_millis(300));
    let mut waits = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(server.get("/api/date").status, 200);
        waits.push(started.elapsed());
    }
    assert!(
        !long.is_finished(),
        "the short requests were answered while the long one ran"
    );
    assert_eq!(long.join().unwrap().body, "done");
    eprintln!("with one worker busy for 3 s, /api/date took {waits:?}");
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let server = limited(&[
        "--workers",
        "1",
        "--max-running",
        "1",
        "--queue",
        "1",
        "--fuel",
        SPIN_FUEL,
    ]);
    let running = in_background(&server, "/hostile/spin?ms=1500");
    std::thread::sleep(Duration::from_millis(300));
    let queued = in_background(&server, "/hostile/spin?ms=10");
    std::thread::sleep(Duration::from_millis(200));
    let reply = server.get("/api/date");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(running.join().unwrap().status, 200);
    assert_eq!(queued.join().unwrap().status, 200);
    assert_eq!(server.get("/api/date").status, 200);
}

#[test]
fn per_function_limits_override_the_server_defaults() {
    let tight = function(
        "tight",
        "hostile",
        &["/tight/..."],
        r#""limits": {"timeout_ms": 200}"#,
    );
    let roomy = function("roomy", "hostile", &["/roomy/..."], "");
    let server = Server::start(&[tight, roomy], &["--fuel", SPIN_FUEL]);
    assert_eq!(server.get("/tight/spin?ms=1000").status, 504);
    assert_eq!(server.get("/roomy/spin?ms=400").status, 200);
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let server = limited(&["--fuel", SPIN_FUEL]);
    let slow = in_background(&server, "/hostile/spin?ms=800");
    std::thread::sleep(Duration::from_millis(200));
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let reply = slow.join().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "done");
}

#[test]
fn no_request_sees_anything_of_the_one_before() {
    // Instances are reused (restored to what a fresh one is): interleave requests that leave
    // state behind (a trap, a panic, a deep recursion, a long body) with ones that show all they
    // see, and check each shows exactly its own request.
    let server = Server::start(&examples(), &[]);
    for i in 0..60 {
        match i % 4 {
            0 => assert_eq!(server.get("/hostile/trap").status, 500),
            1 => assert_eq!(server.get("/hostile/panic").status, 500),
            2 => {
                let body = vec![b'a' + (i % 26) as u8; 5000 + i * 100];
                let reply = server.request("POST", "/hostile/echo", &[], &body);
                assert!(reply.body.ends_with(std::str::from_utf8(&body).unwrap()));
            }
            _ => {}
        }
        let header = format!("value-{i}");
        let reply = server.request(
            "GET",
            &format!("/hostile/echo?n={i}"),
            &[("X-Probe", &header)],
            b"",
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        let probes: Vec<&str> = reply
            .body
            .lines()
            .filter(|l| l.starts_with("HTTP_X_PROBE="))
            .collect();
        assert_eq!(
            probes,
            [format!("HTTP_X_PROBE={header}")],
            "request {i}: {}",
            reply.body
        );
        assert!(
            reply.body.contains(&format!("\nquery=n={i}\n")),
            "{}",
            reply.body
        );
        assert!(
            reply.body.ends_with("body_len=0\nbody:\n"),
            "request {i}: {}",
            reply.body
        );
    }
}
