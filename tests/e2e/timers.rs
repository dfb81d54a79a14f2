//! Timers and asynchronous calls from real modules: ticks on schedule, a slow run skipping
//! ticks instead of piling them up, one catch-up run after downtime; `Prefer: respond-async`
//! answered at once, its result read without a token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::{Server, TempDir, eventually};

fn deploy(server: &Server, name: &str, extra: &str) {
    let config = format!(r#"{{"routes": ["/{name}/..."], {extra}}}"#);
    let reply = server.deploy_json(name, "events", &config);
    assert_eq!(reply.status, 201, "{reply:?}");
}

/// The `at=` of each timer line `name` recorded.
fn ticks(server: &Server, name: &str) -> Vec<u64> {
    server
        .recorded(name)
        .iter()
        .map(|line| {
            let at = line
                .rsplit_once(" at=")
                .unwrap_or_else(|| panic!("{line}"))
                .1;
            at.parse().unwrap()
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_timer_runs_on_its_ticks() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(&server, "tick", r#""timers": ["every 1s"]"#);
    let ticks = eventually(10, "three ticks", || {
        let ticks = ticks(&server, "tick");
        (ticks.len() >= 3).then_some(ticks)
    });
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "{ticks:?}");
    }
    assert!(ticks.iter().all(|t| t % 1000 == 0), "{ticks:?}");
    let line = &server.recorded("tick")[0];
    assert!(
        line.starts_with("trigger=timer timer=every 1s at="),
        "{line}"
    );
    // A run is counted once its invocation has returned, a moment after what it wrote shows.
    let series = r#"wisp_timer_runs_total{function="tick",timer="every 1s"}"#;
    eventually(5, "three runs counted", || {
        (server.metric(series)? >= 3.0).then_some(())
    });
    // A bad schedule is refused at deploy, with the reason.
    let bad = server.deploy_json("x", "events", r#"{"timers": ["every 10 parsecs"]}"#);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("unknown unit"), "{bad:?}");
}

#[test]
fn a_slow_timer_skips_ticks_instead_of_piling_up() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(
        &server,
        "slow",
        r#""timers": ["every 1s"], "env": {"SLEEP_MS": "2500"}"#,
    );
    let ticks = eventually(15, "two runs", || {
        let ticks = ticks(&server, "slow");
        (ticks.len() >= 2).then_some(ticks)
    });
    // Each run takes 2.5 s: the two ticks in between are skipped, never queued.
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 3000, "{ticks:?}");
    }
    let skipped = server.metric(r#"wisp_timer_skipped_total{function="slow",timer="every 1s"}"#);
    assert!(skipped.unwrap() >= 2.0, "{skipped:?}");
    let logs = server.admin("GET", "/_wisp/functions/slow/logs", b"").body;
    assert!(logs.contains("its previous run has not finished"), "{logs}");
}

#[test]
fn a_timer_that_missed_ticks_while_down_runs_once_at_start() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(&server, "beat", r#""timers": ["every 2s"]"#);
    let first = eventually(10, "a first run", || {
        ticks(&server, "beat").first().copied()
    });
    // Past the flush that makes the recorded tick durable, then down through the next tick.
    std::thread::sleep(Duration::from_millis(1300));
    server.kill9();
    let missed = first + 2000;
    std::thread::sleep(Duration::from_millis(
        (missed + 500).saturating_sub(now_ms()),
    ));
    let server = Server::serve(&data.0, &[]);
    let ticks = eventually(5, "the catch-up run", || {
        let ticks = ticks(&server, "beat");
        (ticks.len() >= 2).then_some(ticks)
    });
    assert_eq!(ticks[..2], [first, missed], "{ticks:?}");
}

#[test]
fn an_async_call_answers_at_once_and_keeps_its_result() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let fuel = "fuel=1000000000000";
    let reply = server.deploy("h", "hostile", &format!("route=/h/...&{fuel}"));
    assert_eq!(reply.status, 201, "{reply:?}");
    let prefer = [("Prefer", "wait=5, respond-async")];
    let accepted = server.request("POST", "/h/echo?x=1", &prefer, b"the body");
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert_eq!(accepted.header("preference-applied"), Some("respond-async"));
    let location = accepted.header("location").unwrap().to_string();
    let json: Value = serde_json::from_str(&accepted.body).unwrap();
    assert_eq!(json["location"], location.as_str());
    assert!(location.starts_with("/_wisp/async/") && location.len() == 13 + 32);
    // No token needed: the id is the secret.
    let done = eventually(5, "the result", || {
        let reply = server.get(&location);
        (reply.status != 202).then_some(reply)
    });
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.header("wisp-async-state"), Some("done"));
    assert!(
        done.body.contains("method=POST\npath=/echo\nquery=x=1\n"),
        "{}",
        done.body
    );
    assert!(done.body.ends_with("body:\nthe body"), "{}", done.body);
    // While it runs, the state says so.
    let slow = server.request("GET", "/h/spin?ms=1000", &prefer, b"");
    let location = slow.header("location").unwrap().to_string();
    let running = eventually(5, "the call to start", || {
        let reply = server.get(&location);
        (reply.header("wisp-async-state") == Some("running")).then_some(reply)
    });
    assert_eq!(
        (running.status, running.header("retry-after")),
        (202, Some("1"))
    );
    let done = eventually(5, "the slow result", || {
        let reply = server.get(&location);
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(done.body, "done");
    // A failure is the result, not retried.
    let trap = server.request("GET", "/h/trap", &prefer, b"");
    let location = trap.header("location").unwrap().to_string();
    let failed = eventually(5, "the failed result", || {
        let reply = server.get(&location);
        (reply.status != 202).then_some(reply)
    });
    assert_eq!(failed.status, 500, "{failed:?}");
    assert!(failed.body.contains("trapped"), "{failed:?}");
    let unknown = format!("/_wisp/async/{}", "0".repeat(32));
    assert_eq!(server.get(&unknown).status, 404);
    assert_eq!(server.get("/_wisp/async/../functions").status, 404);
}
