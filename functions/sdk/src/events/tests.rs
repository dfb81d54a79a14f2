use super::*;

fn request(env: &[(&str, &str)]) -> Request {
    Request::new(env.iter().copied(), vec![], b"payload".to_vec())
}

fn kv_change(key: &[u8], op: KvOp) -> Event {
    Event::Kv(KvChange {
        store: "orders".into(),
        key: key.to_vec(),
        op,
    })
}

#[test]
fn http_requests() {
    assert_eq!(Request::default().event(), Event::Http);
    assert_eq!(request(&[("REQUEST_METHOD", "GET")]).event(), Event::Http);
    assert_eq!(request(&[("WISP_TRIGGER", "")]).event(), Event::Http);
}

#[test]
fn topic_messages() {
    let req = request(&[
        ("WISP_TRIGGER", "topic"),
        ("WISP_TOPIC", "orders"),
        ("WISP_MESSAGE_ID", "01HZX-7"),
        ("WISP_ATTEMPT", "3"),
    ]);
    let expected = TopicMessage {
        topic: "orders".into(),
        id: "01HZX-7".into(),
        attempt: 3,
    };
    assert_eq!(req.event(), Event::Topic(expected));
    assert_eq!(req.body(), b"payload");
}

#[test]
fn timer_ticks() {
    let req = request(&[
        ("WISP_TRIGGER", "timer"),
        ("WISP_TIMER", "*/5 * * * *"),
        ("WISP_SCHEDULED_AT", "1717171717000"),
    ]);
    let expected = TimerTick {
        schedule: "*/5 * * * *".into(),
        scheduled_at_ms: 1_717_171_717_000,
    };
    assert_eq!(req.event(), Event::Timer(expected));
}

#[test]
fn kv_changes() {
    let req = request(&[
        ("WISP_TRIGGER", "kv"),
        ("WISP_KV_STORE", "orders"),
        ("WISP_KV_KEY", "order/7+1%"),
        ("WISP_KV_OP", "set"),
    ]);
    // Without an encoding, the key is as it is: `+` and `%` included.
    assert_eq!(req.event(), kv_change(b"order/7+1%", KvOp::Set));
    let Event::Kv(change) = req.event() else {
        unreachable!()
    };
    assert_eq!(change.key_str(), Some("order/7+1%"));

    let req = request(&[
        ("WISP_TRIGGER", "kv"),
        ("WISP_KV_STORE", "orders"),
        ("WISP_KV_KEY", "%6B%00%FF%2b"),
        ("WISP_KV_KEY_ENCODING", "percent"),
        ("WISP_KV_OP", "delete"),
    ]);
    let event = req.event();
    assert_eq!(event, kv_change(b"k\0\xff+", KvOp::Delete));
    let Event::Kv(change) = event else {
        unreachable!()
    };
    assert_eq!(change.key_str(), None);
    assert_eq!(
        (KvOp::Set.as_str(), KvOp::Delete.to_string()),
        ("set", "delete".into())
    );
}

#[test]
fn missing_or_malformed_variables_fall_back() {
    let topic = |attempt: Option<&str>| {
        let mut env = vec![("WISP_TRIGGER", "topic")];
        env.extend(attempt.map(|a| ("WISP_ATTEMPT", a)));
        request(&env).event()
    };
    for attempt in [
        None,
        Some(""),
        Some("0"),
        Some("-1"),
        Some("x"),
        Some("99999999999"),
    ] {
        let expected = TopicMessage {
            topic: String::new(),
            id: String::new(),
            attempt: 1,
        };
        assert_eq!(topic(attempt), Event::Topic(expected), "{attempt:?}");
    }
    assert!(matches!(topic(Some(" 2 ")), Event::Topic(m) if m.attempt == 2));

    let timer = request(&[("WISP_TRIGGER", "timer"), ("WISP_SCHEDULED_AT", "soon")]);
    let expected = TimerTick {
        schedule: String::new(),
        scheduled_at_ms: 0,
    };
    assert_eq!(timer.event(), Event::Timer(expected));

    let kv = request(&[("WISP_TRIGGER", "kv"), ("WISP_KV_OP", "rename")]);
    let expected = KvChange {
        store: String::new(),
        key: Vec::new(),
        op: KvOp::Set,
    };
    assert_eq!(kv.event(), Event::Kv(expected));
    // Malformed escapes are kept; an unknown encoding leaves the key as it is.
    let kv = request(&[
        ("WISP_TRIGGER", "kv"),
        ("WISP_KV_KEY", "%4%zz%41%"),
        ("WISP_KV_KEY_ENCODING", "percent"),
    ]);
    assert!(matches!(kv.event(), Event::Kv(c) if c.key == b"%4%zzA%"));
    let kv = request(&[
        ("WISP_TRIGGER", "kv"),
        ("WISP_KV_KEY", "%41"),
        ("WISP_KV_KEY_ENCODING", "base64"),
    ]);
    assert!(matches!(kv.event(), Event::Kv(c) if c.key == b"%41"));

    assert_eq!(
        request(&[("WISP_TRIGGER", "queue")]).event(),
        Event::Other("queue".into())
    );
}

#[test]
fn requests_for_events_round_trip() {
    let events = [
        Event::Http,
        Event::Topic(TopicMessage {
            topic: "orders".into(),
            id: "m1".into(),
            attempt: 2,
        }),
        Event::Timer(TimerTick {
            schedule: "every 10s".into(),
            scheduled_at_ms: 42,
        }),
        kv_change(b"order/1", KvOp::Set),
        kv_change(b"a\0b", KvOp::Delete),
        kv_change(b"\xff\xfe", KvOp::Set),
        kv_change(b"%41", KvOp::Set),
        Event::Other("queue".into()),
    ];
    for event in events {
        let req = Request::for_event(&event, b"body".to_vec());
        assert_eq!(req.event(), event);
        assert_eq!(
            (
                req.method(),
                req.path(),
                req.query_string(),
                req.script_name()
            ),
            ("POST", "", "", "")
        );
        assert_eq!(req.var("CONTENT_LENGTH"), Some("4"));
        assert_eq!(req.var("SERVER_PROTOCOL"), Some("HTTP/1.1"));
        assert_eq!(req.body(), b"body");
    }
    // Only keys that are not plain text are encoded, and then every byte.
    let req = Request::for_event(&kv_change(b"a\0b", KvOp::Set), vec![]);
    assert_eq!(req.var("WISP_KV_KEY"), Some("%61%00%62"));
    assert_eq!(req.var("WISP_KV_KEY_ENCODING"), Some("percent"));
    let req = Request::for_event(&kv_change(b"%41", KvOp::Set), vec![]);
    assert_eq!(req.var("WISP_KV_KEY"), Some("%41"));
    assert_eq!(req.var("WISP_KV_KEY_ENCODING"), None);
    assert_eq!(
        Request::for_event(&Event::Http, vec![]).var("WISP_TRIGGER"),
        None
    );
}
