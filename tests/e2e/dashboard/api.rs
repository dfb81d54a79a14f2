//! The page's files and the endpoints it reads, over sockets.

use serde_json::Value;

use crate::support::{Server, eventually, examples};

#[test]
fn the_page_loads_without_a_token_and_holds_no_data() {
    let server = Server::start(&examples(), &[]);
    let page = server.get("/_wisp/ui/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    // The page is the same for everyone: no function, no token in it.
    for name in ["date", "weather", "hello-c", crate::support::TOKEN] {
        assert!(!page.body.contains(name), "the page shows {name}");
    }
    for (file, kind) in [
        ("index.html", "text/html"),
        ("style.css", "text/css"),
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("dom.js", "text/javascript"),
        ("functions.js", "text/javascript"),
        ("views.js", "text/javascript"),
    ] {
        let reply = server.get(&format!("/_wisp/ui/{file}"));
        assert_eq!(reply.status, 200, "{file}");
        assert!(reply.header("content-type").unwrap().starts_with(kind));
    }
    let bare = server.get("/_wisp/ui");
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/_wisp/ui/"));
    assert_eq!(server.get("/_wisp/ui/secrets.txt").status, 404);
    let post = server.request("POST", "/_wisp/ui/", &[], b"x");
    assert_eq!(post.status, 405);
    // The data stays behind the token.
    assert_eq!(server.get("/_wisp/device").status, 401);
    assert_eq!(server.get("/_wisp/history").status, 401);
}

#[test]
fn the_device_and_each_functions_last_minutes_are_served_to_the_admin() {
    let server = Server::start(&examples(), &[]);
    let device: Value = serde_json::from_str(&server.admin("GET", "/_wisp/device", b"").body)
        .expect("the device as JSON");
    assert_eq!(device["functions"], 4);
    assert_eq!(device["store"], "embedded");
    assert_eq!(device["board"], Value::Null, "started with --board none");
    assert_eq!(device["fleet"], Value::Null);
    assert!(device["memory"]["rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(device["uptime_s"].as_u64().is_some());

    for _ in 0..5 {
        assert_eq!(server.get("/api/date").status, 200);
    }
    assert_eq!(server.get("/hostile/trap").status, 500);
    // The calls are in a step once it closes, at the next multiple of 10 s.
    let samples = eventually(25, "a closed step with the calls", || {
        let reply = server.admin("GET", "/_wisp/history", b"");
        let history: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(history["step_s"], 10);
        assert_eq!(history["steps"], 90);
        let date = history["functions"]["date"].as_array()?.clone();
        let hostile = history["functions"]["hostile"].as_array()?.clone();
        let count = |samples: &[Value], field: &str| -> u64 {
            samples.iter().map(|s| s[field].as_u64().unwrap()).sum()
        };
        (count(&date, "requests") == 5 && count(&hostile, "errors") == 1).then_some((date, hostile))
    });
    let (date, hostile) = samples;
    let busy = date.iter().find(|s| s["requests"] != 0).unwrap();
    assert!(busy["p50_us"].as_u64().unwrap() > 0, "{busy}");
    assert!(busy["p99_us"].as_u64() >= busy["p50_us"].as_u64(), "{busy}");
    assert!(busy["fuel"].as_u64().unwrap() > 0, "{busy}");
    assert!(hostile.iter().all(|s| s["at"].as_u64().unwrap() % 10 == 0));

    let one = server.admin("GET", "/_wisp/functions/date/history", b"");
    let one: Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(one["name"], "date");
    assert!(!one["samples"].as_array().unwrap().is_empty());
    assert_eq!(
        server
            .admin("GET", "/_wisp/functions/nope/history", b"")
            .status,
        404
    );
    let recent = server.admin("GET", "/_wisp/history?steps=1", b"");
    assert!(recent.body.contains("\"steps\": 1"), "{}", recent.body);
    assert_eq!(
        server.admin("GET", "/_wisp/history?steps=0", b"").status,
        400
    );
    assert_eq!(
        server.admin("GET", "/_wisp/history?steps=91", b"").status,
        400
    );
    // Never called: no samples kept.
    let weather = server.admin("GET", "/_wisp/functions/weather/history", b"");
    assert!(weather.body.contains("\"samples\": []"), "{}", weather.body);
}
