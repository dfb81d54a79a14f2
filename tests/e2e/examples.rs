//! The example functions, served as a newcomer serves them, and the WAGI contract.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{Server, examples};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn date_answers_the_time_as_json_with_cors() {
    let server = Server::start(&examples(), &[]);
    let before = now_ms();
    let reply = server.get("/api/date");
    let after = now_ms();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let now = json["now"].as_u64().unwrap();
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
}

#[test]
fn weather_answers_json() {
    let server = Server::start(&examples(), &[]);
    let reply = server.get("/api/weather");
    assert_eq!(reply.status, 200);
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let cities = json.as_array().unwrap();
    assert!(!cities.is_empty());
    assert!(
        cities
            .iter()
            .all(|c| c["city"].is_string() && c["temperature_c"].is_number())
    );
    let one = server.get("/api/weather?city=lisbon");
    let json: serde_json::Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(json["city"], "Lisbon");
}

#[test]
fn a_c_function_built_with_wasi_libc_runs() {
    let server = Server::start(&examples(), &[]);
    let reply = server.request("POST", "/hello-c/some/where?x=1", &[], b"ignored");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "Hello from C! method=POST path=/some/where\n");
}

#[test]
fn preflight_is_answered_by_the_runtime() {
    let server = Server::start(&examples(), &[]);
    let headers = [
        ("Origin", "http://app.example"),
        ("Access-Control-Request-Method", "GET"),
    ];
    let reply = server.request("OPTIONS", "/api/date", &headers, b"");
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(reply.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(reply.body, "");
}

#[test]
fn unknown_paths_and_methods_get_404_and_405() {
    let server = Server::start(&examples(), &[]);
    assert_eq!(server.get("/api/nothing").status, 404);
    let reply = server.request("DELETE", "/api/date", &[], b"");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(server.get("/healthz").body, "ok\n");
}

#[test]
fn head_has_the_length_and_no_body() {
    let server = Server::start(&examples(), &[]);
    let get = server.get("/api/weather");
    let head = server.request("HEAD", "/api/weather", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    assert_eq!(head.body, "");
}

#[test]
fn the_wagi_contract_reaches_the_guest() {
    let server = Server::start(&examples(), &[]);
    let headers = [
        ("X-Test", "yes"),
        ("Content-Type", "text/plain"),
        ("Authorization", "Bearer s"),
    ];
    let reply = server.request("POST", "/hostile/echo?a=1&b=x%20y", &headers, b"hello body");
    assert_eq!(reply.status, 200, "{reply:?}");
    let port = server.addr.port().to_string();
    for line in [
        "method=POST".to_string(),
        "REQUEST_METHOD=POST".into(),
        "PATH_INFO=/echo".into(),
        "SCRIPT_NAME=/hostile".into(),
        "QUERY_STRING=a=1&b=x%20y".into(),
        "X_MATCHED_ROUTE=/hostile/...".into(),
        "HTTP_X_TEST=yes".into(),
        "CONTENT_TYPE=text/plain".into(),
        "CONTENT_LENGTH=10".into(),
        format!("SERVER_PORT={port}"),
        "REMOTE_ADDR=127.0.0.1".into(),
        "WISP_FUNCTION=hostile".into(),
        "X_FULL_URL=http://test/hostile/echo?a=1&b=x%20y".into(),
        "0=/hostile/echo".into(),
        "1=a=1".into(),
        "2=b=x y".into(),
        "body_len=10".into(),
    ] {
        assert!(
            reply.body.lines().any(|l| l == line),
            "missing `{line}` in:\n{}",
            reply.body
        );
    }
    assert!(reply.body.ends_with("hello body"));
    assert!(
        !reply.body.contains("AUTHORIZATION"),
        "credentials must not reach the guest"
    );
}

#[test]
fn cgi_status_location_and_headers_pass_through() {
    let server = Server::start(&examples(), &[]);
    let reply = server.get("/hostile/status");
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("x-custom"), Some("yes"));
    assert_eq!(reply.header("location"), Some("/somewhere"));
    assert_eq!(server.get("/hostile/nothing-here").status, 404);
}

#[test]
fn function_env_from_the_manifest_is_seen() {
    let f = crate::support::function(
        "hostile",
        "hostile",
        &["/h/..."],
        r#""env": {"GREETING": "hi there"}"#,
    );
    let server = Server::start(&[f], &[]);
    let reply = server.get("/h/echo");
    assert!(
        reply.body.lines().any(|l| l == "GREETING=hi there"),
        "{}",
        reply.body
    );
}
