use super::*;
use std::time::Instant;
use wisp_sdk::events::{KvChange, KvOp, TimerTick, TopicMessage};
use wisp_sdk::kv::{self, Store};
use wisp_sdk::topics;

fn reset() {
    kv::testing::reset();
    topics::testing::reset();
}

fn topic(id: &str, attempt: u32, payload: &str) -> Response {
    let event = Event::Topic(TopicMessage {
        topic: "jobs".into(),
        id: id.into(),
        attempt,
    });
    handle(Request::for_event(&event, payload.as_bytes().to_vec()))
}

fn http(path: &str, query: &str) -> (u16, String) {
    let res = handle(Request::new(
        [
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/t/events"),
            ("PATH_INFO", path),
            ("QUERY_STRING", query),
        ],
        vec![],
        vec![],
    ));
    let body = String::from_utf8(res.body_bytes().to_vec()).unwrap();
    (res.status(), body)
}

fn log() -> String {
    let (status, body) = http("/log", "");
    assert_eq!(status, 200);
    body
}

fn count(key: &str) -> i64 {
    Store::default_store().counter(key).unwrap()
}

#[test]
fn records_every_kind_of_event() {
    reset();
    assert_eq!(topic("m1", 1, "hello world").status(), 204);
    let tick = Event::Timer(TimerTick {
        schedule: "*/5 * * * *".into(),
        scheduled_at_ms: 1_700_000_000_000,
    });
    assert_eq!(handle(Request::for_event(&tick, vec![])).status(), 204);
    let change = Event::Kv(KvChange {
        store: "shared".into(),
        key: b"a\0b%".to_vec(),
        op: KvOp::Set,
    });
    let res = handle(Request::for_event(&change, b"v\n1".to_vec()));
    assert_eq!(res.status(), 204);
    let delete = Event::Kv(KvChange {
        store: "shared".into(),
        key: b"k".to_vec(),
        op: KvOp::Delete,
    });
    assert_eq!(handle(Request::for_event(&delete, vec![])).status(), 204);
    assert_eq!(
        log(),
        "trigger=topic topic=jobs id=m1 attempt=1 payload=hello world\n\
         trigger=timer timer=*/5 * * * * at=1700000000000\n\
         trigger=kv store=shared key=a%00b%25 op=set value=v%0A1\n\
         trigger=kv store=shared key=k op=delete value=\n"
    );
    assert_eq!(count("ok/m1"), 1);
    assert_eq!(count("ok/*/5 * * * *"), 1);
    assert_eq!(count("ok/a\0b%"), 1);
    assert_eq!(count("seq"), 4);
    let first = Store::default_store().get("event/0000000001").unwrap();
    assert!(first.unwrap().starts_with(b"trigger=topic "));
}

#[test]
fn payload_words_make_it_fail() {
    reset();
    assert_eq!(topic("m1", 1, "fail").status(), 500);
    assert_eq!(topic("m2", 1, "x fail-until=go").status(), 500);
    assert_eq!(http("/set", "key=go&value=1"), (200, "code=0".into()));
    assert_eq!(topic("m2", 2, "x fail-until=go").status(), 204);
    // `failure` is not `fail`.
    assert_eq!(topic("m3", 1, "failure").status(), 204);
    assert_eq!(count("ok/m1"), 0);
    assert_eq!(count("ok/m2"), 1);
    // Failed deliveries are recorded too, each with its attempt.
    assert_eq!(log().lines().count(), 4);
    assert!(log().contains("id=m2 attempt=2 payload=x fail-until=go\n"));
}

#[test]
#[should_panic(expected = "trap")]
fn payload_trap_panics_after_recording() {
    reset();
    topic("m1", 1, "trap");
}

#[test]
fn sleeps() {
    reset();
    let start = Instant::now();
    let event = Event::Topic(TopicMessage {
        topic: "jobs".into(),
        id: "m1".into(),
        attempt: 1,
    });
    let mut req = Request::for_event(&event, b"sleep=20 sleep=x".to_vec());
    assert_eq!(handle(req).status(), 204);
    assert!(start.elapsed().as_millis() >= 20);
    let start = Instant::now();
    let vars = [
        ("WISP_TRIGGER", "topic"),
        ("WISP_MESSAGE_ID", "m2"),
        ("SLEEP_MS", "15"),
    ];
    req = Request::new(vars, vec![], b"sleep=10".to_vec());
    assert_eq!(handle(req).status(), 204);
    assert!(start.elapsed().as_millis() >= 25);
}

#[test]
fn a_failed_record_fails_the_event() {
    reset();
    kv::testing::queue_full(true);
    let res = topic("m1", 1, "");
    assert_eq!(res.status(), 500);
    assert!(String::from_utf8_lossy(res.body_bytes()).starts_with("record failed: "));
}

#[test]
fn publishes() {
    reset();
    assert_eq!(
        http("/publish", "topic=jobs"),
        (200, "published=1 code=0".into())
    );
    assert_eq!(
        http("/publish", "topic=jobs&n=3&payload=a+b"),
        (200, "published=3 code=0".into())
    );
    assert_eq!(
        http("/publish", "topic=jobs&size=4&then=fail"),
        (500, "published=1 code=0".into())
    );
    let published = topics::testing::published();
    assert_eq!(published.len(), 5);
    assert_eq!(published[0], ("jobs".into(), b"hello".to_vec()));
    assert_eq!(published[1].1, b"a b");
    assert_eq!(published[4].1, b"xxxx");

    topics::testing::allow(&["other"]);
    assert_eq!(
        http("/publish", "topic=jobs&n=2"),
        (200, "published=0 code=-10".into())
    );
    topics::testing::reset();
    assert_eq!(
        http("/publish", "topic=jobs&size=131073"),
        (200, "published=0 code=-11".into())
    );
    assert_eq!(
        http("/storm", "topic=jobs&size=100000"),
        (200, "published=10 code=-12".into())
    );
    topics::testing::reset();
    assert_eq!(
        http("/storm", "topic=jobs"),
        (200, "published=256 code=-12".into())
    );
}

#[test]
#[should_panic(expected = "trap after published=2 code=0")]
fn publish_then_trap() {
    reset();
    http("/publish", "topic=jobs&n=2&then=trap");
}

#[test]
fn sets_gets_and_deletes() {
    reset();
    assert_eq!(http("/get", "key=k"), (200, "missing".into()));
    assert_eq!(http("/set", "key=k&value=v+1"), (200, "code=0".into()));
    assert_eq!(http("/get", "key=k"), (200, "value=v 1".into()));
    assert_eq!(http("/set", "key=k&size=3"), (200, "code=0".into()));
    assert_eq!(http("/get", "key=k"), (200, "value=xxx".into()));
    assert_eq!(http("/delete", "key=k"), (200, "code=0".into()));
    assert_eq!(http("/delete", "key=k&then=fail"), (500, "code=0".into()));
    assert_eq!(http("/get", "key=k"), (200, "missing".into()));
    assert_eq!(http("/set", "store=s&key=k"), (200, "code=-2".into()));
    assert_eq!(http("/get", "store=s&key=k"), (200, "code=-2".into()));
    assert_eq!(http("/set", "key="), (200, "code=-3".into()));
    kv::testing::grant(&["default", "s"]);
    assert_eq!(
        http("/set", "store=s&key=k&value=1"),
        (200, "code=0".into())
    );
    kv::testing::queue_full(true);
    assert_eq!(http("/delete", "store=s&key=k"), (200, "code=-9".into()));
}

#[test]
fn other_paths_are_not_found() {
    reset();
    assert_eq!(http("/nothing", "").0, 404);
    assert_eq!(http("", "").0, 404);
    assert_eq!(log(), "");
}

#[test]
fn escaping() {
    assert_eq!(event::escape(b"plain text ~!"), "plain text ~!");
    assert_eq!(
        event::escape(b"50%\r\n\x7f\xc3\xa9"),
        "50%25%0D%0A%7F%C3%A9"
    );
}
