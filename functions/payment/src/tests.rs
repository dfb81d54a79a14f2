use super::*;
use wisp_sdk::events::TopicMessage;
use wisp_sdk::kv;

const NOW: u64 = 1_717_000_000_000;

fn reset() -> Store {
    kv::testing::reset();
    kv::testing::grant(&[ORDERS]);
    Store::open(ORDERS)
}

fn deliver(message: &str, attempt: u32) -> Response {
    let event = Event::Topic(TopicMessage {
        topic: "orders".into(),
        id: "m-1".into(),
        attempt,
    });
    handle(Request::for_event(&event, message.as_bytes().to_vec()), NOW)
}

const PENDING: &str = r#"{"id":"7","item":"book","amount":12,"status":"pending"}"#;
const PAID: &str =
    r#"{"amount":12,"id":"7","item":"book","paid_at":1717000000000,"status":"paid"}"#;

fn stored(store: &Store) -> String {
    String::from_utf8(store.get("order/7").unwrap().unwrap()).unwrap()
}

#[test]
fn pays_a_pending_order_once() {
    let store = reset();
    store.set("order/7", PENDING).unwrap();
    assert_eq!(deliver(PENDING, 1).status(), 204);
    assert_eq!(stored(&store), PAID);
    // A redelivery succeeds and changes nothing, paid_at included.
    let later = Request::for_event(
        &Event::Topic(TopicMessage {
            topic: "orders".into(),
            id: "m-1".into(),
            attempt: 2,
        }),
        PENDING.as_bytes().to_vec(),
    );
    assert_eq!(handle(later, NOW + 5000).status(), 204);
    assert_eq!(stored(&store), PAID);
}

#[test]
fn the_message_needs_only_the_id() {
    let store = reset();
    store.set("order/7", PENDING).unwrap();
    assert_eq!(deliver(r#"{"id": 7}"#, 1).status(), 204);
    assert_eq!(stored(&store), PAID);
}

#[test]
fn what_retrying_cannot_fix_succeeds_and_changes_nothing() {
    let store = reset();
    for message in ["", "nonsense", "[]", r#"{"id": ""}"#, r#"{"id": null}"#] {
        assert_eq!(deliver(message, 1).status(), 204, "{message}");
    }
    // No such order.
    assert_eq!(deliver(PENDING, 1).status(), 204);
    assert_eq!(store.get("order/7").unwrap(), None);
    // Not pending, or not an order at all.
    for order in [
        r#"{"id":"7","status":"cancelled"}"#,
        r#"{"id":"7"}"#,
        "junk",
    ] {
        store.set("order/7", order).unwrap();
        assert_eq!(deliver(PENDING, 1).status(), 204);
        assert_eq!(stored(&store), order);
    }
}

#[test]
fn store_errors_fail_so_the_host_retries() {
    let store = reset();
    store.set("order/7", PENDING).unwrap();
    kv::testing::queue_full(true);
    assert_eq!(deliver(PENDING, 1).status(), 503);
    kv::testing::fail_writes(true);
    assert_eq!(deliver(PENDING, 2).status(), 500);
    kv::testing::fail_writes(false);
    assert_eq!(stored(&store), PENDING);
    assert_eq!(deliver(PENDING, 3).status(), 204);
    assert_eq!(stored(&store), PAID);
}

#[test]
fn http_requests_are_not_found() {
    reset();
    let req = Request::new([("REQUEST_METHOD", "GET")], vec![], vec![]);
    assert_eq!(handle(req, NOW).status(), 404);
}

#[test]
fn order_json() {
    assert_eq!(order::id_of(br#"{"id":"12","x":1}"#).as_deref(), Some("12"));
    assert_eq!(order::id_of(br#"{"id":12}"#).as_deref(), Some("12"));
    assert_eq!(order::id_of(b"12"), None);
    assert_eq!(
        order::pay(PENDING.as_bytes(), NOW),
        order::Payment::Pay(PAID.into())
    );
    assert_eq!(
        order::pay(PAID.as_bytes(), NOW),
        order::Payment::AlreadyPaid
    );
}
