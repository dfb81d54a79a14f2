//! An event: sleep, record it, then succeed or fail as the payload's words say.

use std::time::Duration;
use wisp_sdk::events::Event;
use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::{Request, Response};

pub fn handle(req: &Request, event: &Event) -> Response {
    let payload = String::from_utf8_lossy(req.body());
    let words: Vec<&str> = payload.split_whitespace().collect();
    report_latency(event, &words);
    if let Some(ms) = req.var("SLEEP_MS").and_then(|ms| ms.trim().parse().ok()) {
        sleep(ms);
    }
    for ms in words.iter().filter_map(|w| w.strip_prefix("sleep=")) {
        sleep(ms.parse().unwrap_or(0));
    }
    if words.contains(&"quiet") {
        return Response::new(204);
    }

    let store = Store::default_store();
    let (line, marker) = describe(event, req.body());
    let recorded = store
        .increment("seq", 1)
        .and_then(|n| store.set(format!("event/{n:010}"), line));
    if let Err(e) = recorded {
        return failed("record failed", e);
    }

    if words.contains(&"trap") {
        panic!("events: trap, as the payload asks");
    }
    if words.contains(&"fail") {
        return Response::text(500, "fail, as the payload asks\n");
    }
    if let Some(key) = words.iter().find_map(|w| w.strip_prefix("fail-until=")) {
        match store.exists(key) {
            Ok(true) => {}
            Ok(false) => return Response::text(500, format!("fail until {key} exists\n")),
            Err(e) => return failed("fail-until", e),
        }
    }
    let mut ok_key = b"ok/".to_vec();
    ok_key.extend_from_slice(&marker);
    match store.increment(ok_key, 1) {
        Ok(_) => Response::new(204),
        Err(e) => failed("ok count failed", e),
    }
}

/// For the benchmarks: logs `latency_us=<µs>` from the event's origin to now, for a message
/// whose payload has `stamp=<µs since the epoch>` (the `publish` route's `stamp=1`) or for a
/// timer's tick (from its scheduled time).
fn report_latency(event: &Event, words: &[&str]) {
    let origin_us = match event {
        Event::Timer(tick) => Some(tick.scheduled_at_ms * 1000),
        _ => words
            .iter()
            .find_map(|w| w.strip_prefix("stamp="))
            .and_then(|us| us.parse().ok()),
    };
    if let Some(origin) = origin_us {
        let latency = crate::now_us().saturating_sub(origin);
        wisp_sdk::log(format_args!("latency_us={latency}"));
    }
}

fn sleep(ms: u64) {
    // On wasm32 this is poll_oneoff, which the host implements without holding a worker.
    std::thread::sleep(Duration::from_millis(ms));
}

fn failed(what: &str, e: KvError) -> Response {
    wisp_sdk::log(format_args!("events: {what}: {e}"));
    Response::text(500, format!("{what}: {e}\n"))
}

/// The line recorded for `event` with this payload, and the marker its `ok/` counter is named
/// by.
fn describe(event: &Event, payload: &[u8]) -> (String, Vec<u8>) {
    let payload = escape(payload);
    match event {
        Event::Topic(m) => (
            format!(
                "trigger=topic topic={} id={} attempt={} payload={payload}",
                escape(m.topic.as_bytes()),
                escape(m.id.as_bytes()),
                m.attempt
            ),
            m.id.as_bytes().to_vec(),
        ),
        Event::Timer(t) => (
            format!(
                "trigger=timer timer={} at={}",
                escape(t.schedule.as_bytes()),
                t.scheduled_at_ms
            ),
            t.schedule.as_bytes().to_vec(),
        ),
        Event::Kv(c) => (
            format!(
                "trigger=kv store={} key={} op={} value={payload}",
                escape(c.store.as_bytes()),
                escape(&c.key),
                c.op
            ),
            c.key.clone(),
        ),
        Event::Other(trigger) => (
            format!("trigger={} payload={payload}", escape(trigger.as_bytes())),
            trigger.as_bytes().to_vec(),
        ),
        // `handle` in main.rs sends HTTP requests elsewhere; a newer SDK's triggers land here.
        _ => ("trigger=unknown".to_string(), b"unknown".to_vec()),
    }
}

/// `bytes` on one line: 0x20 to 0x7E as they are except `%`, every other byte as `%XX`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b.into());
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
