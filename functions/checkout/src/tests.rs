use super::*;
use wisp_sdk::{kv, topics};

fn reset() {
    kv::testing::reset();
    kv::testing::grant(&[ORDERS]);
    topics::testing::reset();
    topics::testing::allow(&[ORDERS]);
}

fn call(method: &str, path: &str, body: &str) -> Response {
    let (script, info) = match path.strip_prefix("/api/orders") {
        Some(rest) => ("/api/orders", rest),
        None => (path, ""),
    };
    handle(Request::new(
        [
            ("REQUEST_METHOD", method),
            ("SCRIPT_NAME", script),
            ("PATH_INFO", info),
        ],
        vec![],
        body.as_bytes().to_vec(),
    ))
}

fn body(res: &Response) -> &str {
    std::str::from_utf8(res.body_bytes()).unwrap()
}

fn header<'a>(res: &'a Response, name: &str) -> Option<&'a str> {
    let mut headers = res.headers().iter();
    headers.find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[test]
fn places_stores_and_publishes_orders() {
    reset();
    let res = call("POST", "/api/checkout", r#"{"item": "book", "amount": 12}"#);
    assert_eq!((res.status(), body(&res)), (202, r#"{"id":"1"}"#));
    assert_eq!(header(&res, "Location"), Some("/api/orders/1"));
    let order = r#"{"id":"1","item":"book","amount":12,"status":"pending"}"#;
    let stored = Store::open(ORDERS).get("order/1").unwrap();
    assert_eq!(stored.as_deref(), Some(order.as_bytes()));
    assert_eq!(
        topics::testing::published(),
        [(ORDERS.to_string(), order.as_bytes().to_vec())]
    );

    let res = call(
        "POST",
        "/api/checkout",
        r#"{"amount": 2.5, "item": "tea \"green\"", "note": "x"}"#,
    );
    assert_eq!(body(&res), r#"{"id":"2"}"#);
    let res = call("GET", "/api/orders/2", "");
    assert_eq!(res.status(), 200);
    assert_eq!(
        body(&res),
        r#"{"id":"2","item":"tea \"green\"","amount":2.5,"status":"pending"}"#
    );
    assert_eq!(header(&res, "Content-Type"), Some("application/json"));
}

#[test]
fn invalid_orders_are_refused() {
    reset();
    for bad in [
        "",
        "not json",
        "[1]",
        r#"{"amount": 12}"#,
        r#"{"item": "", "amount": 12}"#,
        r#"{"item": "  ", "amount": 12}"#,
        r#"{"item": 7, "amount": 12}"#,
        r#"{"item": "book"}"#,
        r#"{"item": "book", "amount": 0}"#,
        r#"{"item": "book", "amount": -1}"#,
        r#"{"item": "book", "amount": "12"}"#,
    ] {
        let res = call("POST", "/api/checkout", bad);
        assert_eq!(res.status(), 400, "{bad}");
        assert!(body(&res).starts_with(r#"{"error":"#), "{bad}");
    }
    assert!(topics::testing::published().is_empty());
    assert_eq!(Store::open(ORDERS).get("next-order-id").unwrap(), None);
}

#[test]
fn unknown_orders_methods_and_paths() {
    reset();
    for path in ["/api/orders/1", "/api/orders/", "/api/orders/1/2"] {
        let res = call("GET", path, "");
        assert_eq!(
            (res.status(), body(&res)),
            (404, r#"{"error":"no such order"}"#)
        );
    }
    let long = format!("/api/orders/{}", "9".repeat(2000));
    assert_eq!(call("GET", &long, "").status(), 404);
    let res = call("GET", "/api/checkout", "");
    assert_eq!((res.status(), header(&res, "Allow")), (405, Some("POST")));
    let res = call("DELETE", "/api/orders/1", "");
    assert_eq!((res.status(), header(&res, "Allow")), (405, Some("GET")));
    assert_eq!(call("GET", "/api/other", "").status(), 404);
}

#[test]
fn a_full_queue_asks_to_try_later_and_stores_nothing() {
    reset();
    topics::testing::queue_full(true);
    let res = call("POST", "/api/checkout", r#"{"item": "book", "amount": 1}"#);
    assert_eq!(
        (res.status(), header(&res, "Retry-After")),
        (503, Some("1"))
    );
    assert_eq!(Store::open(ORDERS).get("order/1").unwrap(), None);

    // A watcher of the store too far behind: the write fails, and so does the invocation,
    // which drops the message it published.
    topics::testing::queue_full(false);
    kv::testing::queue_full(true);
    let res = call("POST", "/api/checkout", r#"{"item": "book", "amount": 1}"#);
    assert_eq!(
        (res.status(), header(&res, "Retry-After")),
        (503, Some("1"))
    );
}

#[test]
fn a_topic_it_may_not_publish_to_fails() {
    reset();
    topics::testing::allow(&[]);
    let res = call("POST", "/api/checkout", r#"{"item": "book", "amount": 1}"#);
    assert_eq!(res.status(), 500);
    assert_eq!(Store::open(ORDERS).get("order/1").unwrap(), None);
    let huge = format!(r#"{{"item": "{}", "amount": 1}}"#, "x".repeat(200_000));
    topics::testing::reset();
    assert_eq!(call("POST", "/api/checkout", &huge).status(), 413);
}
