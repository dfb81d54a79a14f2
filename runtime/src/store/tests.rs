//! The store's suite, run on both backends: each function below is a test of any [`Store`],
//! and `on_both!` makes it a `#[test]` for the embedded store (`on_embedded::NAME`) and for
//! Redis (`on_redis::NAME`, against a `redis-server` of its own).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::test_support::temp_db;
use super::*;

on_both!(
    behaves_like_a_sorted_map,
    concurrent_writers_share_syncs,
    namespaces_keep_functions_apart,
    keys_and_values_are_capped,
    counters_are_decimal_text,
    keys_are_any_bytes,
);

/// A small deterministic generator, so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn behaves_like_a_sorted_map(db: Arc<dyn Store>) {
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys: Vec<Vec<u8>> = (0..24)
        .map(|i| format!("k{}", i % 12 * 7 + i / 12).into_bytes())
        .collect();
    for step in 0..3000 {
        let key = &keys[rng.below(keys.len() as u64) as usize];
        let value = format!("v{}", rng.below(5)).into_bytes();
        match rng.below(7) {
            0 => assert_eq!(
                db.get(key).wait().unwrap(),
                model.get(key).cloned(),
                "step {step}"
            ),
            1 => {
                db.set(key, &value, None).wait().unwrap();
                model.insert(key.clone(), value);
            }
            2 => assert_eq!(
                db.delete(key, None).wait().unwrap(),
                model.remove(key).is_some(),
                "step {step}"
            ),
            3 => assert_eq!(db.exists(key).wait().unwrap(), model.contains_key(key)),
            4 => {
                let current = model
                    .get(key)
                    .map(|v| std::str::from_utf8(v).unwrap().parse::<i64>());
                match current {
                    Some(Err(_)) => {
                        assert_eq!(db.increment(key, 3, None).wait(), Err(KvError::NotANumber))
                    }
                    other => {
                        let next = other.map_or(0, |v| v.unwrap()) + 3;
                        assert_eq!(db.increment(key, 3, None).wait().unwrap(), next);
                        model.insert(key.clone(), next.to_string().into_bytes());
                    }
                }
            }
            5 => {
                let expected = if rng.below(2) == 0 {
                    model.get(key).cloned()
                } else {
                    Some(value.clone())
                };
                let new = if rng.below(4) == 0 {
                    None
                } else {
                    Some(b"cas".to_vec())
                };
                let swapped = db
                    .compare_and_swap(key, expected.as_deref(), new.as_deref(), None)
                    .wait()
                    .unwrap();
                assert_eq!(swapped, model.get(key) == expected.as_ref(), "step {step}");
                if swapped {
                    match new {
                        Some(v) => model.insert(key.clone(), v),
                        None => model.remove(key),
                    };
                }
            }
            _ => {
                let prefix = &key[..2];
                let after = (rng.below(2) == 0).then(|| key.clone());
                let limit = 1 + rng.below(6) as usize;
                let expect: Vec<Vec<u8>> = model
                    .keys()
                    .filter(|k| k.starts_with(prefix) && after.as_ref().is_none_or(|a| *k > a))
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(
                    db.list(prefix, after.as_deref(), limit).wait().unwrap(),
                    expect,
                    "step {step}"
                );
            }
        }
    }
}

#[test]
fn synced_writes_survive_reopening() {
    let (dir, db) = temp_db();
    db.set(b"a", b"1", None).wait().unwrap();
    db.increment(b"n", 5, None).wait().unwrap();
    db.sync().wait().unwrap();
    drop(db);
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    assert_eq!(db.get(b"a").wait().unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"n").wait().unwrap().as_deref(), Some(&b"5"[..]));
    std::fs::remove_dir_all(dir).unwrap();
}

fn concurrent_writers_share_syncs(db: Arc<dyn Store>) {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    db.increment(format!("c{t}").as_bytes(), 1, None)
                        .wait()
                        .unwrap();
                    db.set(format!("k{t}-{i}").as_bytes(), b"x", None)
                        .wait()
                        .unwrap();
                    db.sync().wait().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    for t in 0..8 {
        assert_eq!(
            db.get(format!("c{t}").as_bytes())
                .wait()
                .unwrap()
                .as_deref(),
            Some(&b"50"[..])
        );
    }
    assert_eq!(db.list(b"k", None, 1000).wait().unwrap().len(), 400);
}

fn namespaces_keep_functions_apart(store: Arc<dyn Store>) {
    let names = ["default".to_string()];
    let a = Grants::new(&store, "a", &names, &["orders".into()]);
    let b = Grants::new(&store, "b", &names, &["orders".into()]);
    let (a_default, b_default) = (a.get(b"default").unwrap(), b.get(b"default").unwrap());
    a_default.set(b"k", b"from a").wait().unwrap();
    b_default.set(b"k", b"from b").wait().unwrap();
    assert_eq!(a_default.get(b"k").wait().unwrap().unwrap(), b"from a");
    assert_eq!(b_default.get(b"k").wait().unwrap().unwrap(), b"from b");
    // Keys that look like another namespace stay inside this one.
    a_default.set(b"\0b\0k", b"sneaky").wait().unwrap();
    assert_eq!(b_default.get(b"k").wait().unwrap().unwrap(), b"from b");
    assert_eq!(
        a_default.list(b"", None, 10).wait().unwrap(),
        vec![b"\0b\0k".to_vec(), b"k".to_vec()]
    );
    // The shared store is one namespace for both.
    a.get(b"orders").unwrap().set(b"o1", b"x").wait().unwrap();
    assert!(b.get(b"orders").unwrap().exists(b"o1").wait().unwrap());
    assert!(a.get(b"nope").is_none());
}

fn keys_and_values_are_capped(store: Arc<dyn Store>) {
    let s = Scoped::new(store, namespace("default", Some("f")));
    assert_eq!(s.set(b"", b"v").wait(), Err(KvError::InvalidKey));
    assert_eq!(
        s.set(&[b'k'; MAX_KEY + 1], b"v").wait(),
        Err(KvError::InvalidKey)
    );
    assert!(s.set(&[b'k'; MAX_KEY], b"v").wait().is_ok());
    assert_eq!(
        s.set(b"k", &vec![0; MAX_VALUE + 1]).wait(),
        Err(KvError::ValueTooLarge)
    );
    assert!(s.set(b"k", &vec![0; MAX_VALUE]).wait().is_ok());
    assert_eq!(
        s.compare_and_swap(b"k", None, Some(&vec![0; MAX_VALUE + 1]))
            .wait(),
        Err(KvError::ValueTooLarge)
    );
    s.set(b"n", &i64::MAX.to_string().into_bytes())
        .wait()
        .unwrap();
    assert_eq!(s.increment(b"n", 1).wait(), Err(KvError::NotANumber));
}

/// What an increment accepts and what a later get returns: the same on every backend.
fn counters_are_decimal_text(db: Arc<dyn Store>) {
    let cases: &[(&[u8], Option<&str>)] = &[
        (b"41", Some("42")),
        (b"-0", Some("1")),
        (b"+7", Some("8")),
        (b"007", Some("8")),
        (b"-007", Some("-6")),
        (b" \t12\r\n", Some("13")),
        // Unicode white space, as `str::trim` sees it: NBSP, U+2003, U+3000, U+0085.
        ("\u{a0}5\u{2003}".as_bytes(), Some("6")),
        ("\u{3000}\u{85}-3\u{2029}".as_bytes(), Some("-2")),
        (b"0000000000000000000000000000000000000009", Some("10")),
        (b"9223372036854775806", Some("9223372036854775807")),
        (b"-9223372036854775808", Some("-9223372036854775807")),
        (b"9223372036854775807", None),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"", None),
        (b" ", None),
        (b"+", None),
        (b"-", None),
        (b"+-1", None),
        (b"1 2", None),
        (b"1_000", None),
        (b"0x10", None),
        (b"1e3", None),
        (b"1.0", None),
        ("\u{ff15}".as_bytes(), None),  // a full-width digit
        ("5\u{200b}".as_bytes(), None), // a zero-width space is not white space
        (b"5\x1c", None),               // nor is a file separator
        (b"\xff5", None),
        (b"5\0", None),
    ];
    for (stored, after) in cases {
        db.set(b"c", stored, None).wait().unwrap();
        let result = db.increment(b"c", 1, None).wait();
        let shown = String::from_utf8_lossy(stored);
        match after {
            Some(after) => {
                assert_eq!(result, Ok(after.parse().unwrap()), "{shown:?}");
                let got = db.get(b"c").wait().unwrap();
                assert_eq!(got.as_deref(), Some(after.as_bytes()), "{shown:?}");
            }
            None => {
                assert_eq!(result, Err(KvError::NotANumber), "{shown:?}");
                // Unchanged, byte for byte.
                let got = db.get(b"c").wait().unwrap();
                assert_eq!(got.as_deref(), Some(*stored), "{shown:?}");
            }
        }
    }
    // A missing key counts from 0, and is created even by an increment of 0.
    assert_eq!(db.increment(b"new", 0, None).wait(), Ok(0));
    assert_eq!(db.get(b"new").wait().unwrap().as_deref(), Some(&b"0"[..]));
    assert_eq!(
        db.list(b"new", None, 10).wait().unwrap(),
        vec![b"new".to_vec()]
    );
    assert_eq!(db.increment(b"new", i64::MIN, None).wait(), Ok(i64::MIN));
    assert_eq!(
        db.increment(b"new", -1, None).wait(),
        Err(KvError::NotANumber)
    );
    assert_eq!(db.increment(b"new", i64::MAX, None).wait(), Ok(-1));
}

/// Keys and values are bytes: NUL, 0xff, and prefixes that end in 0xff list as they sort.
fn keys_are_any_bytes(db: Arc<dyn Store>) {
    let keys: [&[u8]; 8] = [
        b"\0",
        b"a",
        b"a\0",
        b"a\xff",
        b"a\xff\xff",
        b"a\xff\xffz",
        b"b",
        b"\xff",
    ];
    for (i, key) in keys.iter().enumerate() {
        db.set(key, &[0xff, 0, i as u8], None).wait().unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(db.get(key).wait().unwrap(), Some(vec![0xff, 0, i as u8]));
    }
    let all = db.list(b"", None, 100).wait().unwrap();
    assert_eq!(all, keys.map(<[u8]>::to_vec));
    assert_eq!(db.list(b"a\xff", None, 100).wait().unwrap(), keys[3..6]);
    assert_eq!(db.list(b"a\xff\xff", None, 100).wait().unwrap(), keys[4..6]);
    assert_eq!(db.list(b"\xff", None, 100).wait().unwrap(), keys[7..]);
    assert_eq!(db.list(b"a", Some(b"a\0"), 2).wait().unwrap(), keys[3..5]);
    assert_eq!(
        db.list(b"a", Some(b"\xff"), 2).wait().unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(db.list(b"", None, 0).wait().unwrap(), Vec::<Vec<u8>>::new());
    assert!(db.delete(b"a\xff", None).wait().unwrap());
    assert!(!db.delete(b"a\xff", None).wait().unwrap());
    assert!(!db.exists(b"a\xff").wait().unwrap());
    assert_eq!(db.list(b"a\xff", None, 100).wait().unwrap(), keys[4..6]);
    // The empty value is a value, not absence.
    db.set(b"e", b"", None).wait().unwrap();
    assert_eq!(db.get(b"e").wait().unwrap(), Some(Vec::new()));
    assert!(db.exists(b"e").wait().unwrap());
    assert!(
        !db.compare_and_swap(b"e", None, Some(b"x"), None)
            .wait()
            .unwrap()
    );
    assert!(
        db.compare_and_swap(b"e", Some(b""), None, None)
            .wait()
            .unwrap()
    );
    assert!(!db.exists(b"e").wait().unwrap());
    assert!(db.compare_and_swap(b"e", None, None, None).wait().unwrap());
    assert_eq!(
        db.list(b"e", None, 10).wait().unwrap(),
        Vec::<Vec<u8>>::new()
    );
}
