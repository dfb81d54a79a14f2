use super::*;

fn store() -> Store {
    testing::reset();
    Store::default_store()
}

fn all_keys(store: &Store, prefix: &str, buffer_size: usize) -> Vec<Vec<u8>> {
    store
        .keys(prefix)
        .buffer_size(buffer_size)
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn error_codes_round_trip() {
    for code in (-9..=-1).chain([-13]) {
        let err = KvError::from_code(code);
        assert!(!matches!(err, KvError::Unexpected(_)), "{code}");
        assert_eq!(err.code(), code);
        assert!(!err.to_string().is_empty());
    }
    // -10 to -12 are publish's.
    for code in -12..=-10 {
        assert_eq!(KvError::from_code(code), KvError::Unexpected(code));
    }
    assert_eq!(KvError::from_code(-14), KvError::Unexpected(-14));
    assert_eq!(KvError::Unexpected(7).code(), 7);
    assert_eq!(
        KvError::InvalidKey.to_string(),
        "invalid key: a key is 1 to 1024 bytes"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(KvError::NoSuchStore);
    assert!(boxed.to_string().contains("not granted"));
}

#[test]
fn set_get_delete_exists() {
    let s = store();
    assert_eq!(s.get("k").unwrap(), None);
    assert!(!s.exists("k").unwrap());
    s.set("k", "v").unwrap();
    assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
    assert!(s.exists(b"k").unwrap());
    s.set("k", "").unwrap();
    assert_eq!(s.get("k").unwrap(), Some(Vec::new()));
    assert!(s.exists("k").unwrap());
    assert!(s.delete("k").unwrap());
    assert!(!s.delete("k").unwrap());
    assert_eq!(s.get("k").unwrap(), None);
    // Binary keys and values.
    s.set([0u8, 255], [1u8, 0, 2]).unwrap();
    assert_eq!(s.get([0u8, 255]).unwrap(), Some(vec![1, 0, 2]));
}

#[test]
fn get_retries_with_a_big_enough_buffer() {
    let s = store();
    for len in [0, 1, 255, 256, 257, 4096, MAX_VALUE_LEN] {
        let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        s.set("v", &value).unwrap();
        assert_eq!(
            s.get("v").unwrap().as_deref(),
            Some(value.as_slice()),
            "{len}"
        );
    }
}

#[test]
fn get_follows_a_value_that_grows_between_calls() {
    let s = store();
    s.set("k", vec![1u8; 300]).unwrap();
    let (grow, grow_more) = (Some(vec![2u8; 1000]), Some(vec![3u8; 5000]));
    writes_after_get([("k", grow), ("k", grow_more)]);
    // 300 bytes: too big for the first buffer; then 1000, then 5000, which it gets.
    assert_eq!(s.get("k").unwrap(), Some(vec![3u8; 5000]));

    // Shrinking is fine too: the buffer is cut to the value's length.
    s.set("k", vec![5u8; 300]).unwrap();
    writes_after_get([("k", Some(vec![6u8; 3]))]);
    assert_eq!(s.get("k").unwrap(), Some(vec![6u8; 3]));

    // And so is a value deleted in between.
    s.set("k", vec![7u8; 300]).unwrap();
    writes_after_get([("k", None)]);
    assert_eq!(s.get("k").unwrap(), None);
}

fn writes_after_get<const N: usize>(writes: [(&str, Option<Vec<u8>>); N]) {
    host::with(|fake| {
        let writes = writes.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v));
        fake.writes_after_get = writes.collect();
    });
}

#[test]
fn get_into_reports_the_full_length() {
    let s = store();
    s.set("k", "hello world").unwrap();
    let mut buf = [0u8; 5];
    assert_eq!(s.get_into("k", &mut buf).unwrap(), Some(11));
    assert_eq!(&buf, b"hello");
    assert_eq!(s.get_into("k", &mut []).unwrap(), Some(11));
    assert_eq!(s.get_into("nope", &mut buf).unwrap(), None);
}

#[test]
fn keys_and_values_are_capped() {
    let s = store();
    let longest = vec![b'k'; MAX_KEY_LEN];
    s.set(&longest, "ok").unwrap();
    assert_eq!(s.get(&longest).unwrap(), Some(b"ok".to_vec()));
    let too_long = vec![b'k'; MAX_KEY_LEN + 1];
    assert_eq!(s.set(&too_long, "x"), Err(KvError::InvalidKey));
    assert_eq!(s.set("", "x"), Err(KvError::InvalidKey));
    assert_eq!(s.get(""), Err(KvError::InvalidKey));
    assert_eq!(s.get(&too_long), Err(KvError::InvalidKey));
    assert_eq!(s.delete(""), Err(KvError::InvalidKey));
    assert_eq!(s.exists(""), Err(KvError::InvalidKey));
    assert_eq!(s.increment("", 1), Err(KvError::InvalidKey));
    assert_eq!(
        s.compare_and_swap("", None, Some(b"x")),
        Err(KvError::InvalidKey)
    );

    let big = vec![0u8; MAX_VALUE_LEN + 1];
    assert_eq!(s.set("k", &big), Err(KvError::ValueTooLarge));
    assert_eq!(
        s.compare_and_swap("k", None, Some(&big)),
        Err(KvError::ValueTooLarge)
    );
    assert_eq!(s.get("k").unwrap(), None);
}

#[test]
fn stores_must_be_granted_and_are_separate() {
    let s = store();
    let other = Store::open("other");
    assert_eq!(other.get("k"), Err(KvError::NoSuchStore));
    assert_eq!(other.set("k", "v"), Err(KvError::NoSuchStore));
    assert_eq!(other.delete("k"), Err(KvError::NoSuchStore));
    assert_eq!(other.exists("k"), Err(KvError::NoSuchStore));
    assert_eq!(other.increment("k", 1), Err(KvError::NoSuchStore));
    assert_eq!(other.counter("k"), Err(KvError::NoSuchStore));
    assert_eq!(
        other.compare_and_swap("k", None, None),
        Err(KvError::NoSuchStore)
    );
    assert_eq!(other.list_page("", "", 64), Err(KvError::NoSuchStore));
    assert_eq!(
        other.keys("").collect::<Vec<_>>(),
        [Err(KvError::NoSuchStore)]
    );
    // The store is checked before the key.
    assert_eq!(other.set("", "v"), Err(KvError::NoSuchStore));

    testing::grant(&["default", "other"]);
    s.set("k", "in default").unwrap();
    other.set("k", "in other").unwrap();
    assert_eq!(s.get("k").unwrap(), Some(b"in default".to_vec()));
    assert_eq!(other.get("k").unwrap(), Some(b"in other".to_vec()));
    assert_eq!(Store::default(), s);
    assert_eq!(other.name(), "other");
}

#[test]
fn counters() {
    let s = store();
    assert_eq!(s.counter("c").unwrap(), 0);
    assert!(!s.exists("c").unwrap());
    assert_eq!(s.increment("c", 1).unwrap(), 1);
    assert_eq!(s.increment("c", 10).unwrap(), 11);
    assert_eq!(s.increment("c", -20).unwrap(), -9);
    assert_eq!(s.get("c").unwrap(), Some(b"-9".to_vec()));
    assert_eq!(s.counter("c").unwrap(), -9);
    assert_eq!(s.increment("c", 0).unwrap(), -9);

    s.set("c", " 41\n").unwrap();
    assert_eq!(s.counter("c").unwrap(), 41);
    assert_eq!(s.increment("c", 1).unwrap(), 42);

    s.set("text", "forty-two").unwrap();
    assert_eq!(s.increment("text", 1), Err(KvError::NotANumber));
    assert_eq!(s.counter("text"), Err(KvError::NotANumber));
    assert_eq!(s.get("text").unwrap(), Some(b"forty-two".to_vec()));

    s.set("max", i64::MAX.to_string()).unwrap();
    assert_eq!(s.increment("max", 1), Err(KvError::NotANumber));
    assert_eq!(s.counter("max").unwrap(), i64::MAX);
    assert_eq!(s.increment("min", i64::MIN).unwrap(), i64::MIN);
    assert_eq!(s.increment("min", -1), Err(KvError::NotANumber));
}

#[test]
fn compare_and_swap() {
    let s = store();
    // Absent expected: create only if missing.
    assert!(s.compare_and_swap("k", None, Some(b"1")).unwrap());
    assert!(!s.compare_and_swap("k", None, Some(b"2")).unwrap());
    assert_eq!(s.get("k").unwrap(), Some(b"1".to_vec()));
    // Matching value: swap; mismatch: nothing changes.
    assert!(!s.compare_and_swap("k", Some(b"0"), Some(b"2")).unwrap());
    assert!(s.compare_and_swap("k", Some(b"1"), Some(b"2")).unwrap());
    assert_eq!(s.get("k").unwrap(), Some(b"2".to_vec()));
    // The empty value is a value, not absence.
    assert!(s.compare_and_swap("k", Some(b"2"), Some(b"")).unwrap());
    assert!(!s.compare_and_swap("k", None, Some(b"3")).unwrap());
    assert!(s.compare_and_swap("k", Some(b""), None).unwrap());
    assert!(!s.exists("k").unwrap());
    // Deleting a missing key on "must be absent" succeeds and leaves it absent.
    assert!(s.compare_and_swap("k", None, None).unwrap());
    assert!(!s.exists("k").unwrap());
}

#[test]
fn failed_writes_change_nothing() {
    let s = store();
    s.set("k", "v").unwrap();
    testing::fail_writes(true);
    assert_eq!(s.set("k", "w"), Err(KvError::StoreFailed));
    assert_eq!(s.delete("k"), Err(KvError::StoreFailed));
    assert_eq!(s.increment("n", 1), Err(KvError::StoreFailed));
    assert_eq!(
        s.compare_and_swap("k", Some(b"v"), None),
        Err(KvError::StoreFailed)
    );
    // Reads still work, and the checks come first.
    assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.set("", "w"), Err(KvError::InvalidKey));
    testing::fail_writes(false);
    assert_eq!(s.get("n").unwrap(), None);
    s.set("k", "w").unwrap();
}

#[test]
fn a_full_queue_refuses_writes_only() {
    let s = store();
    s.set("k", "v").unwrap();
    testing::queue_full(true);
    assert_eq!(s.set("k", "w"), Err(KvError::QueueFull));
    assert_eq!(s.delete("k"), Err(KvError::QueueFull));
    assert_eq!(s.increment("n", 1), Err(KvError::QueueFull));
    assert_eq!(
        s.compare_and_swap("k", Some(b"v"), None),
        Err(KvError::QueueFull)
    );
    assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(KvError::QueueFull.code(), -9);
    assert!(KvError::QueueFull.to_string().contains("did not happen"));
    testing::queue_full(false);
    s.set("k", "w").unwrap();
}

#[test]
fn an_unavailable_store_refuses_reads_and_writes() {
    let s = store();
    s.set("k", "v").unwrap();
    testing::unavailable(true);
    assert_eq!(s.get("k"), Err(KvError::Unavailable));
    assert_eq!(s.exists("k"), Err(KvError::Unavailable));
    assert_eq!(s.counter("k"), Err(KvError::Unavailable));
    assert_eq!(
        s.keys("").collect::<Result<Vec<_>, _>>(),
        Err(KvError::Unavailable)
    );
    assert_eq!(s.set("k", "w"), Err(KvError::Unavailable));
    assert_eq!(s.delete("k"), Err(KvError::Unavailable));
    assert_eq!(s.increment("n", 1), Err(KvError::Unavailable));
    assert_eq!(
        s.compare_and_swap("k", Some(b"v"), None),
        Err(KvError::Unavailable)
    );
    // The checks come first.
    assert_eq!(s.get(""), Err(KvError::InvalidKey));
    assert_eq!(Store::open("nope").get("k"), Err(KvError::NoSuchStore));
    assert_eq!(
        Store::open("nope").keys("").next(),
        Some(Err(KvError::NoSuchStore))
    );
    assert_eq!(KvError::Unavailable.code(), -13);
    assert!(
        KvError::Unavailable
            .to_string()
            .contains("cannot be reached")
    );
    testing::unavailable(false);
    assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.get("n").unwrap(), None);
}

#[test]
fn list_pages_in_byte_order() {
    let s = store();
    for key in ["b", "a:2", "a:10", "a:1", "a", "c"] {
        s.set(key, "x").unwrap();
    }
    let keys = all_keys(&s, "a:", DEFAULT_LIST_BUFFER);
    assert_eq!(keys, [&b"a:1"[..], b"a:10", b"a:2"]);
    let every = all_keys(&s, "", DEFAULT_LIST_BUFFER);
    assert_eq!(every, [&b"a"[..], b"a:1", b"a:10", b"a:2", b"b", b"c"]);
    assert!(all_keys(&s, "z", DEFAULT_LIST_BUFFER).is_empty());

    // One page at a time: 8 bytes hold one 3-byte key (4 + 3) but not two.
    assert_eq!(s.list_page("a:", "", 8).unwrap(), [b"a:1"]);
    assert_eq!(s.list_page("a:", "a:1", 8).unwrap(), [b"a:10"]);
    assert_eq!(s.list_page("a:", "a:10", 8).unwrap(), [b"a:2"]);
    assert_eq!(s.list_page("a:", "a:2", 8).unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn every_buffer_size_lists_every_key() {
    let s = store();
    let mut expected: Vec<Vec<u8>> = (0..200).map(|i| format!("k{i:03}").into_bytes()).collect();
    expected.push(vec![b'k'; MAX_KEY_LEN]);
    expected.sort();
    for key in &expected {
        s.set(key, "v").unwrap();
    }
    for size in [0, 1, 7, 8, 9, 16, 100, DEFAULT_LIST_BUFFER, 1 << 20] {
        assert_eq!(all_keys(&s, "k", size), expected, "buffer of {size} bytes");
    }
}

#[test]
fn list_page_reports_a_buffer_too_small() {
    let s = store();
    s.set("abcdef", "v").unwrap();
    assert_eq!(s.list_page("", "", 9), Err(KvError::BufferTooSmall));
    assert_eq!(s.list_page("", "", 10).unwrap(), [b"abcdef".to_vec()]);
    assert_eq!(
        s.list_page("", "abcdef", 10).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    // Past the last key there is nothing, whatever the buffer.
    assert_eq!(s.list_page("", "abcdef", 0).unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn listing_pages_beyond_the_hosts_page_cap() {
    // The host returns at most 1024 keys a call, even when more would fit: the iterator
    // must go on until an empty page, not stop at a short one.
    let s = store();
    for i in 0..2500 {
        s.set(format!("n{i:05}"), "").unwrap();
    }
    let first = s.list_page("n", "", 1 << 20).unwrap();
    assert_eq!(first.len(), 1024);
    let keys = all_keys(&s, "n", 1 << 20);
    assert_eq!(keys.len(), 2500);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn after_before_the_prefix_starts_at_the_prefix() {
    let s = store();
    for key in ["a", "b1", "b2", "c"] {
        s.set(key, "").unwrap();
    }
    assert_eq!(
        s.list_page("b", "a", 64).unwrap(),
        [b"b1".to_vec(), b"b2".to_vec()]
    );
    assert_eq!(s.list_page("b", "b1", 64).unwrap(), [b"b2".to_vec()]);
    assert_eq!(s.list_page("b", "zz", 64).unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn keys_stop_after_an_error() {
    let s = Store::open("ungranted");
    testing::reset();
    let mut keys = s.keys("");
    assert_eq!(keys.next(), Some(Err(KvError::NoSuchStore)));
    assert_eq!(keys.next(), None);
    assert_eq!(keys.next(), None);
}

#[test]
fn decoding_rejects_a_malformed_listing() {
    let mut buf = Vec::new();
    buf.extend_from_slice(&2u32.to_le_bytes());
    buf.extend_from_slice(b"ab");
    buf.extend_from_slice(&5u32.to_le_bytes());
    buf.extend_from_slice(b"abc");
    assert_eq!(decode_keys(&buf, 1).unwrap(), [b"ab".to_vec()]);
    assert_eq!(decode_keys(&buf, 2), Err(KvError::Unexpected(2)));
    assert_eq!(decode_keys(&buf[..3], 1), Err(KvError::Unexpected(1)));
    assert_eq!(decode_keys(&[], 0).unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn unexpected_answers_are_errors() {
    assert_eq!(check(5).unwrap(), 5);
    assert_eq!(check(-4), Err(KvError::ValueTooLarge));
    assert_eq!(check_bool(2), Err(KvError::Unexpected(2)));
    assert_eq!(check_bool(-2), Err(KvError::NoSuchStore));
    assert!(check_bool(1).unwrap());
    assert!(!check_bool(0).unwrap());
}
