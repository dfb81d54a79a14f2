use super::*;

fn fresh() {
    testing::reset();
}

#[test]
fn error_codes_round_trip() {
    for code in [-5, -9, -10, -11, -12] {
        let err = PublishError::from_code(code);
        assert!(!matches!(err, PublishError::Unexpected(_)), "{code}");
        assert_eq!(err.code(), code);
        assert!(!err.to_string().is_empty());
    }
    for code in [-1, -8, -13, 1] {
        assert_eq!(
            PublishError::from_code(code),
            PublishError::Unexpected(code)
        );
    }
    assert_eq!(PublishError::Unexpected(7).code(), 7);
    assert_eq!(
        PublishError::MessageTooLarge.to_string(),
        "message too large: a message is at most 131072 bytes"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(PublishError::NotAllowed);
    assert!(boxed.to_string().contains("`publish` configuration"));
}

#[test]
fn published_messages_are_recorded_in_order() {
    fresh();
    publish("orders", "one").unwrap();
    publish("audit-log", String::from("two")).unwrap();
    publish("orders", []).unwrap();
    assert_eq!(
        testing::published(),
        [
            ("orders".to_string(), b"one".to_vec()),
            ("audit-log".to_string(), b"two".to_vec()),
            ("orders".to_string(), Vec::new()),
        ]
    );
    testing::reset();
    assert!(testing::published().is_empty());
}

#[test]
fn topic_names_are_checked() {
    fresh();
    let longest = "a".repeat(63);
    for good in ["a", "0", "orders", "a-b-9", "9lives", longest.as_str()] {
        assert_eq!(publish(good, "x"), Ok(()), "{good:?}");
    }
    let too_long = "a".repeat(64);
    for bad in [
        "",
        "-a",
        "Orders",
        "a_b",
        "a.b",
        "a b",
        "é",
        too_long.as_str(),
    ] {
        assert_eq!(publish(bad, "x"), Err(PublishError::NotAllowed), "{bad:?}");
    }
    assert_eq!(testing::published().len(), 6);
}

#[test]
fn only_allowed_topics() {
    fresh();
    testing::allow(&["orders"]);
    assert_eq!(publish("orders", "x"), Ok(()));
    assert_eq!(publish("payments", "x"), Err(PublishError::NotAllowed));
    testing::allow(&[]);
    assert_eq!(publish("orders", "x"), Err(PublishError::NotAllowed));
    // The message's size is checked before the topic's permission, as the host does.
    let big = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert_eq!(publish("orders", &big), Err(PublishError::MessageTooLarge));
    testing::reset();
    assert_eq!(publish("payments", "x"), Ok(()));
}

#[test]
fn messages_and_invocations_are_capped() {
    fresh();
    assert_eq!(publish("t", vec![0u8; MAX_MESSAGE_LEN]), Ok(()));
    assert_eq!(
        publish("t", vec![0u8; MAX_MESSAGE_LEN + 1]),
        Err(PublishError::MessageTooLarge)
    );
    // 8 messages of 128 KiB are the whole 1 MiB: one more byte is too many.
    for _ in 1..8 {
        publish("t", vec![0u8; MAX_MESSAGE_LEN]).unwrap();
    }
    assert_eq!(publish("t", "x"), Err(PublishError::TooManyMessages));
    assert_eq!(publish("t", ""), Ok(()));

    testing::reset();
    for _ in 0..MAX_MESSAGES_PER_INVOCATION {
        publish("t", "").unwrap();
    }
    assert_eq!(publish("t", ""), Err(PublishError::TooManyMessages));
    assert_eq!(testing::published().len(), MAX_MESSAGES_PER_INVOCATION);
}

#[test]
fn a_full_queue_publishes_nothing() {
    fresh();
    testing::queue_full(true);
    assert_eq!(publish("orders", "x"), Err(PublishError::QueueFull));
    // The other checks come first.
    assert_eq!(publish("BAD", "x"), Err(PublishError::NotAllowed));
    testing::queue_full(false);
    assert_eq!(publish("orders", "y"), Ok(()));
    assert_eq!(
        testing::published(),
        [("orders".to_string(), b"y".to_vec())]
    );
}
