use super::*;
use wisp_sdk::events::KvOp;
use wisp_sdk::kv::testing;

fn change(key: &[u8], op: KvOp, value: &str) -> Response {
    let event = Event::Kv(KvChange {
        store: "orders".into(),
        key: key.to_vec(),
        op,
    });
    handle(Request::for_event(&event, value.as_bytes().to_vec()))
}

fn get() -> (u16, String) {
    let res = handle(Request::new([("REQUEST_METHOD", "GET")], vec![], vec![]));
    let body = String::from_utf8(res.body_bytes().to_vec()).unwrap();
    (res.status(), body)
}

#[test]
fn logs_each_change() {
    testing::reset();
    assert_eq!(get(), (200, r#"{"entries":[]}"#.into()));
    let order = r#"{"id":"1", "status":"pending"}"#;
    assert_eq!(change(b"order/1", KvOp::Set, order).status(), 204);
    assert_eq!(change(b"order/2", KvOp::Set, "not json").status(), 204);
    assert_eq!(change(b"order/1", KvOp::Delete, "").status(), 204);
    assert_eq!(change(b"order/\xff", KvOp::Set, "").status(), 204);
    assert_eq!(
        get(),
        (
            200,
            concat!(
                r#"{"entries":["#,
                r#"{"key":"order/1","op":"set","value":{"id":"1","status":"pending"}},"#,
                r#"{"key":"order/2","op":"set","value":"not json"},"#,
                r#"{"key":"order/1","op":"delete","value":null},"#,
                // The byte that is not UTF-8 is shown as U+FFFD.
                "{\"key\":\"order/\u{fffd}\",\"op\":\"set\",\"value\":\"\"}]}"
            )
            .to_string()
        )
    );
    let stored = Store::default_store().get(entry_key(2)).unwrap().unwrap();
    assert_eq!(
        stored,
        br#"{"key":"order/2","op":"set","value":"not json"}"#
    );
    assert_eq!(entry_key(2), "log/00000000000000000002");
}

#[test]
fn shows_the_last_twenty_oldest_first() {
    testing::reset();
    for i in 1..=25 {
        change(format!("order/{i}").as_bytes(), KvOp::Set, &i.to_string());
    }
    // A number whose entry is missing is skipped.
    Store::default_store().delete(entry_key(10)).unwrap();
    let (status, body) = get();
    assert_eq!(status, 200);
    let entries: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values: Vec<i64> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, (6..=25).filter(|&i| i != 10).collect::<Vec<_>>());
}

#[test]
fn failures() {
    testing::reset();
    testing::queue_full(true);
    assert_eq!(change(b"order/1", KvOp::Set, "1").status(), 500);
    testing::reset();
    let res = handle(Request::new([("REQUEST_METHOD", "POST")], vec![], vec![]));
    assert_eq!(res.status(), 405);
    testing::grant(&[]);
    assert_eq!(get().0, 500);
}
