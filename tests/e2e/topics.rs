//! Topics between functions, from real modules: the seed's checkout and payment, fan-out,
//! what a failing publisher publishes (nothing), permissions and caps, retries into dead
//! letters and replay, and a publish storm against the depth cap.

use serde_json::Value;

use crate::support::{Server, TempDir, eventually, function, module};

/// An `events` function on `/{name}/...` with `extra` configuration keys.
fn events(name: &str, extra: &str) -> String {
    let comma = if extra.is_empty() { "" } else { ", " };
    format!(r#"{{"routes": ["/{name}/..."]{comma}{extra}}}"#)
}

fn deploy(server: &Server, name: &str, extra: &str) {
    let reply = server.deploy_json(name, "events", &events(name, extra));
    assert_eq!(reply.status, 201, "{reply:?}");
}

/// The `published=K code=C` answer of the `events` function's publish routes.
fn published(server: &Server, path: &str) -> (u64, i64) {
    let reply = server.request("POST", path, &[], b"");
    let (k, c) = reply
        .body
        .strip_prefix("published=")
        .and_then(|rest| rest.split_once(" code="))
        .unwrap_or_else(|| panic!("{path}: {reply:?}"));
    (k.parse().unwrap(), c.trim().parse().unwrap())
}

fn topics(server: &Server) -> Value {
    let reply = server.admin("GET", "/_wisp/topics", b"");
    assert_eq!(reply.status, 200, "{reply:?}");
    serde_json::from_str(&reply.body).unwrap()
}

/// The subscriber `function` of `topic` in the topics listing.
fn subscriber(server: &Server, topic: &str, function: &str) -> Value {
    let all = topics(server);
    let topic = all["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .unwrap_or_else(|| panic!("no topic {topic} in {all}"));
    let found = topic["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["function"] == function);
    found
        .cloned()
        .unwrap_or_else(|| panic!("no {function} in {topic}"))
}

#[test]
fn checkout_hands_orders_to_payment_through_a_topic() {
    let shared = r#""shared_stores": ["orders"], "stores": []"#;
    let server = Server::start(
        &[
            function(
                "checkout",
                "checkout",
                &["/api/checkout", "/api/orders/..."],
                &format!(r#""publish": ["orders"], {shared}"#),
            ),
            format!(
                r#"{{"name": "payment", "module": {:?}, "topics": ["orders"], {shared}}}"#,
                module("payment")
            ),
            function(
                "audit",
                "audit",
                &["/api/audit"],
                r#""shared_stores": ["orders"], "watch": [{"store": "orders", "prefix": "order/"}]"#,
            ),
        ],
        &[],
    );
    let placed = server.request(
        "POST",
        "/api/checkout",
        &[],
        br#"{"item": "book", "amount": 12}"#,
    );
    assert_eq!(placed.status, 202, "{placed:?}");
    let id: Value = serde_json::from_str(&placed.body).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    let order = eventually(5, "payment to mark the order paid", || {
        let reply = server.get(&format!("/api/orders/{id}"));
        assert_eq!(reply.status, 200, "{reply:?}");
        let order: Value = serde_json::from_str(&reply.body).unwrap();
        (order["status"] == "paid").then_some(order)
    });
    assert_eq!(
        (order["item"].as_str(), order["amount"].as_i64()),
        (Some("book"), Some(12))
    );
    assert!(order["paid_at"].as_u64().unwrap() > 0);
    // The audit trail sees both writes: pending by checkout, paid by payment.
    let states = eventually(5, "audit to record both writes", || {
        let audit: Value = serde_json::from_str(&server.get("/api/audit").body).unwrap();
        let states: Vec<String> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["value"]["status"].as_str().unwrap().to_string())
            .collect();
        (states.len() >= 2).then_some(states)
    });
    assert_eq!(states, ["pending", "paid"]);
    // Counted once the delivery is settled, a moment after its write is visible.
    let payment = eventually(5, "the delivery to be counted", || {
        let payment = subscriber(&server, "orders", "payment");
        (payment["delivered"] == 1).then_some(payment)
    });
    assert_eq!(payment["depth"], 0);
    let logs = server
        .admin("GET", "/_wisp/functions/payment/logs", b"")
        .body;
    assert!(logs.contains(&format!("paid order {id}")), "{logs}");
    assert!(
        logs.contains("wisp: delivered topic:orders message"),
        "{logs}"
    );
    // A bad order is refused before anything is published.
    let bad = server.request("POST", "/api/checkout", &[], br#"{"item": ""}"#);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(server.get("/api/orders/999").status, 404);
}

#[test]
fn every_subscriber_gets_every_message_and_a_failed_publish_sends_nothing() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(&server, "sub-a", r#""topics": ["news"]"#);
    deploy(
        &server,
        "sub-b",
        r#""topics": [{"topic": "news", "concurrency": 4}]"#,
    );
    deploy(&server, "pub", r#""publish": ["news"]"#);
    // Published by invocations that fail: a failure status, a trap.
    let failed = server.request(
        "POST",
        "/pub/publish?topic=news&payload=never&then=fail",
        &[],
        b"",
    );
    assert_eq!(
        (failed.status, failed.body.as_str()),
        (500, "published=1 code=0")
    );
    let trapped = server.request(
        "POST",
        "/pub/publish?topic=news&payload=never&then=trap",
        &[],
        b"",
    );
    assert_eq!(trapped.status, 500, "{trapped:?}");
    assert_eq!(
        published(&server, "/pub/publish?topic=news&n=3&payload=hi"),
        (3, 0)
    );
    for name in ["sub-a", "sub-b"] {
        let lines = eventually(5, "three deliveries", || {
            let lines = server.recorded(name);
            (lines.len() >= 3).then_some(lines)
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("trigger=topic topic=news id=")),
            "{lines:?}"
        );
        assert!(
            lines.iter().all(|l| l.ends_with(" attempt=1 payload=hi")),
            "{lines:?}"
        );
    }
    // Both subscribers got the same three messages, by id.
    let ids = |name| -> Vec<String> {
        let mut ids: Vec<String> = server
            .recorded(name)
            .iter()
            .map(|l| {
                l.split(" id=")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("sub-a"), ids("sub-b"));
    // What the failed invocations published was never delivered: the dispatchers have long
    // delivered what came after it.
    assert!(!server.recorded("sub-a").iter().any(|l| l.contains("never")));
    assert!(!server.recorded("sub-b").iter().any(|l| l.contains("never")));
}

#[test]
fn publishing_is_limited_to_listed_topics_and_sizes() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(&server, "pub", r#""publish": ["allowed"]"#);
    // No subscriber: accepted, and dropped (counted).
    assert_eq!(published(&server, "/pub/publish?topic=allowed"), (1, 0));
    assert_eq!(server.metric("wisp_topic_unrouted_total"), Some(1.0));
    assert_eq!(published(&server, "/pub/publish?topic=other"), (0, -10));
    assert_eq!(
        published(&server, "/pub/publish?topic=Bad%20Name"),
        (0, -10)
    );
    assert_eq!(
        published(&server, "/pub/publish?topic=allowed&size=131073"),
        (0, -11)
    );
    assert_eq!(
        published(&server, "/pub/publish?topic=allowed&size=131072"),
        (1, 0)
    );
    // 1 MiB in all per invocation: eight of 128 KiB fit, the ninth does not.
    assert_eq!(
        published(&server, "/pub/publish?topic=allowed&n=9&size=131072"),
        (8, -12)
    );
    assert_eq!(
        published(&server, "/pub/publish?topic=allowed&n=300&size=1"),
        (256, -12)
    );
    // Not allowed in a deploy either.
    let bad = server.deploy_json("x", "events", r#"{"routes": ["/x"], "topics": ["UPPER"]}"#);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("invalid topic name `UPPER`"), "{bad:?}");
}

#[test]
fn a_poison_message_lands_in_dead_letters_and_replay_delivers_it_once_fixed() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(
        &server,
        "sub",
        r#""topics": [{"topic": "jobs", "max_attempts": 3, "backoff_ms": 20}]"#,
    );
    let sent = server.admin("POST", "/_wisp/topics/jobs", b"fail-until=fixed");
    assert_eq!(sent.status, 202, "{sent:?}");
    let id: Value = serde_json::from_str(&sent.body).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    eventually(10, "the message to be buried", || {
        (subscriber(&server, "jobs", "sub")["dead_letters"] == 1).then_some(())
    });
    let attempts: Vec<String> = server.recorded("sub");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for (n, line) in attempts.iter().enumerate() {
        assert!(
            line.contains(&format!("id={id} attempt={}", n + 1)),
            "{line}"
        );
    }
    let listed = server.admin("GET", "/_wisp/topics/jobs/dead-letters", b"");
    let listed: Value = serde_json::from_str(&listed.body).unwrap();
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["id"], id.as_str());
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["payload"], "fail-until=fixed");
    assert_eq!(letter["error"], "answered 500");
    let logs = server.admin("GET", "/_wisp/functions/sub/logs", b"").body;
    assert!(
        logs.contains("attempt 1 failed (answered 500); retry in 20 ms"),
        "{logs}"
    );
    assert!(
        logs.contains("attempt 2 failed (answered 500); retry in 40 ms"),
        "{logs}"
    );
    assert!(
        logs.contains("failed 3 times (answered 500); moved to dead letters"),
        "{logs}"
    );
    assert_eq!(
        server.metric(r#"wisp_dead_lettered_total{function="sub",source="topic:jobs"}"#),
        Some(1.0)
    );
    // Fixed: replay delivers it, once.
    assert_eq!(
        server
            .admin("PUT", "/_wisp/kv/default/sub/fixed", b"yes")
            .status,
        204
    );
    let replayed = server.admin("POST", "/_wisp/dead-letters/replay?function=sub", b"");
    assert_eq!(
        replayed.body.trim(),
        "{\n  \"replayed\": 1\n}",
        "{replayed:?}"
    );
    eventually(5, "the replayed message to be handled", || {
        server.kv_get("default", "sub", &format!("ok%2F{id}"))
    });
    assert_eq!(
        server
            .kv_get("default", "sub", &format!("ok%2F{id}"))
            .as_deref(),
        Some("1")
    );
    let after = subscriber(&server, "jobs", "sub");
    assert_eq!(
        (after["dead_letters"].as_u64(), after["depth"].as_u64()),
        (Some(0), Some(0))
    );
    // Purge forgets a dead letter for good.
    server.admin("POST", "/_wisp/topics/jobs", b"fail");
    eventually(10, "the second message to be buried", || {
        (subscriber(&server, "jobs", "sub")["dead_letters"] == 1).then_some(())
    });
    let purged = server.admin("DELETE", "/_wisp/dead-letters?source=topic:jobs", b"");
    assert!(purged.body.contains("\"purged\": 1"), "{purged:?}");
    assert_eq!(subscriber(&server, "jobs", "sub")["dead_letters"], 0);
}

#[test]
fn a_publish_storm_meets_the_depth_cap_with_flat_memory() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &["--max-queue-depth", "50"]);
    // A subscriber that takes its time: the queue fills behind its first message.
    deploy(
        &server,
        "slow",
        r#""topics": ["storm"], "env": {"SLEEP_MS": "60000"}"#,
    );
    deploy(&server, "pub", r#""publish": ["storm"]"#);
    assert_eq!(
        published(&server, "/pub/storm?topic=storm&size=1000"),
        (50, -9)
    );
    assert_eq!(subscriber(&server, "storm", "slow")["depth"], 50);
    // The operator's publish meets the same cap.
    let full = server.admin("POST", "/_wisp/topics/storm", b"x");
    assert_eq!(full.status, 503, "{full:?}");
    let before = server.rss_kib();
    for _ in 0..300 {
        assert_eq!(
            published(&server, "/pub/storm?topic=storm&size=100000"),
            (0, -9)
        );
    }
    let after = server.rss_kib();
    assert!(
        after < before + 4096,
        "RSS grew from {before} to {after} KiB"
    );
    assert_eq!(subscriber(&server, "storm", "slow")["depth"], 50);
}
