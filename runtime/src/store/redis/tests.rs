//! What only the Redis backend has: devices sharing one Redis, fleets kept apart, Redis going
//! away and coming back. The suite every backend passes is `store/tests.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::test_server::TestServer;
use super::*;

#[test]
fn two_devices_incrementing_one_key_lose_no_update() {
    let server = TestServer::start();
    let devices = [
        Arc::new(server.store("shop")),
        Arc::new(server.store("shop")),
    ];
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let device = devices[t % 2].clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    device
                        .increment(b"till", 1, Some("counter"))
                        .wait()
                        .unwrap();
                }
                // And a compare-and-swap loop, the other way to update atomically.
                for _ in 0..50 {
                    loop {
                        let old = device.get(b"cas").wait().unwrap();
                        let n: u64 = old
                            .as_deref()
                            .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let new = (n + 1).to_string();
                        let swapped = device.compare_and_swap(
                            b"cas",
                            old.as_deref(),
                            Some(new.as_bytes()),
                            None,
                        );
                        if swapped.wait().unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    for device in &devices {
        assert_eq!(
            device.get(b"till").wait().unwrap().as_deref(),
            Some(&b"2000"[..])
        );
        assert_eq!(
            device.get(b"cas").wait().unwrap().as_deref(),
            Some(&b"400"[..])
        );
    }
}

#[test]
fn fleets_on_one_redis_do_not_see_each_other() {
    let server = TestServer::start();
    let (a, b) = (server.store("a"), server.store("b"));
    a.set(b"k", b"from a", None).wait().unwrap();
    b.set(b"k", b"from b", None).wait().unwrap();
    a.increment(b"n", 5, None).wait().unwrap();
    assert_eq!(a.get(b"k").wait().unwrap().as_deref(), Some(&b"from a"[..]));
    assert_eq!(b.get(b"k").wait().unwrap().as_deref(), Some(&b"from b"[..]));
    assert!(!b.exists(b"n").wait().unwrap());
    assert_eq!(b.increment(b"n", 1, None).wait(), Ok(1));
    assert!(a.delete(b"k", None).wait().unwrap());
    assert_eq!(b.get(b"k").wait().unwrap().as_deref(), Some(&b"from b"[..]));
    assert_eq!(a.list(b"", None, 10).wait().unwrap(), vec![b"n".to_vec()]);
    assert_eq!(
        b.list(b"", None, 10).wait().unwrap(),
        vec![b"k".to_vec(), b"n".to_vec()]
    );
    // What is in Redis, and where.
    let keys = server.command(&["KEYS", "*"]);
    let mut keys: Vec<Vec<u8>> = redis::from_redis_value(keys).unwrap();
    keys.sort();
    let expected: [&[u8]; 5] = [
        b"wisp:{a}:kv-index",
        b"wisp:{a}:kv:n",
        b"wisp:{b}:kv-index",
        b"wisp:{b}:kv:k",
        b"wisp:{b}:kv:n",
    ];
    assert_eq!(keys, expected);
}

#[test]
fn listing_pages_through_many_keys_in_byte_order() {
    let server = TestServer::start();
    let (store, other) = (server.store("main"), server.store("other"));
    let mut model = BTreeSet::new();
    let mut pending = Vec::new();
    for i in 0u32..3000 {
        // Keys of several lengths and bytes, NUL and 0xff among them.
        let key = [
            &b"p/"[..],
            &(i.wrapping_mul(2_654_435_761)).to_be_bytes()[..(i % 4 + 1) as usize],
        ]
        .concat();
        pending.push(store.set(&key, b"", None));
        model.insert(key);
        pending.push(other.set(format!("p/other{i}").as_bytes(), b"", None));
        pending.push(store.set(format!("q/{i}").as_bytes(), b"", None));
        // At most 1,024 requests wait for the client thread: past that they are refused.
        if pending.len() >= 600 {
            pending.drain(..).for_each(|p| p.wait().unwrap());
        }
    }
    pending.into_iter().for_each(|p| p.wait().unwrap());
    let mut listed = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.list(b"p/", after.as_deref(), 128).wait().unwrap();
        let Some(last) = page.last() else {
            break;
        };
        assert!(page.len() <= 128);
        after = Some(last.clone());
        listed.extend(page);
    }
    assert_eq!(listed, model.into_iter().collect::<Vec<_>>());
}

#[test]
fn requests_waiting_together_go_in_one_pipeline() {
    let server = TestServer::start();
    let store = server.store("f");
    // Many requests made before any is answered are all answered, in order per key.
    let writes: Vec<_> = (0..500)
        .map(|i| store.set(b"k", i.to_string().as_bytes(), None))
        .collect();
    let read = store.get(b"k");
    let synced = store.sync();
    writes.into_iter().for_each(|w| w.wait().unwrap());
    assert_eq!(read.wait().unwrap().as_deref(), Some(&b"499"[..]));
    synced.wait().unwrap();
}

#[test]
fn scripts_that_redis_forgot_are_loaded_again() {
    let server = TestServer::start();
    let store = server.store("f");
    store.set(b"k", b"1", None).wait().unwrap();
    server.command(&["SCRIPT", "FLUSH"]);
    let answers: Vec<_> = (0..10).map(|_| store.increment(b"k", 1, None)).collect();
    let last = answers.into_iter().map(|a| a.wait().unwrap()).max();
    assert_eq!(last, Some(11));
}

#[test]
fn redis_going_away_is_unavailable_at_once_and_recovers_by_itself() {
    let mut server = TestServer::start();
    let store = Arc::new(server.store("f"));
    // Writers that keep going while Redis goes away and comes back; every write answered Ok
    // must be there afterwards (appendfsync always).
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let (mut acknowledged, mut unavailable, mut last) = (0u64, 0u64, 0u64);
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(4) {
                    let key = format!("w{t}");
                    let asked = Instant::now();
                    match store.increment(key.as_bytes(), 1, None).wait() {
                        Ok(n) => {
                            acknowledged += 1;
                            last = n as u64;
                        }
                        Err(KvError::Unavailable(_)) => {
                            unavailable += 1;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("{e}"),
                    }
                    let took = asked.elapsed();
                    assert!(took < Duration::from_secs(5), "an answer took {took:?}");
                }
                (acknowledged, unavailable, last)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    // Down: every operation answers at once, reads and listing too.
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    for result in [
        store.get(b"w0").wait().map(drop),
        store.exists(b"w0").wait().map(drop),
        store.list(b"", None, 10).wait().map(drop),
        store.set(b"x", b"y", None).wait(),
        store.delete(b"x", None).wait().map(drop),
        store
            .compare_and_swap(b"x", None, None, None)
            .wait()
            .map(drop),
        store.sync().wait(),
    ] {
        match result {
            Err(KvError::Unavailable(why)) => assert!(!why.is_empty()),
            other => panic!("{other:?}"),
        }
    }
    // At once: not after a timeout (3 s).
    assert!(asked.elapsed() < Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(1000));
    server.restart();
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let reconnected = Instant::now();
    // Reconnected by itself (the backoff is at most 5 s).
    loop {
        match store.get(b"w0").wait() {
            Ok(_) => break,
            Err(KvError::Unavailable(_)) if reconnected.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("did not reconnect: {e}"),
        }
    }
    for (t, (acknowledged, unavailable, last)) in results.into_iter().enumerate() {
        assert!(
            acknowledged > 0 && unavailable > 0,
            "{acknowledged} {unavailable}"
        );
        let stored = store
            .get(format!("w{t}").as_bytes())
            .wait()
            .unwrap()
            .unwrap();
        let stored: u64 = std::str::from_utf8(&stored).unwrap().parse().unwrap();
        // Every acknowledged increment is there; those answered Unavailable may or may not be.
        assert!(
            stored >= last && stored >= acknowledged,
            "{stored} {last} {acknowledged}"
        );
        assert!(stored <= acknowledged + unavailable);
    }
}

#[test]
fn a_redis_that_hangs_times_out() {
    let server = TestServer::start();
    let store = server.store("f");
    store.set(b"k", b"v", None).wait().unwrap();
    server.pause(true);
    let asked = Instant::now();
    let result = store.get(b"k").wait();
    let took = asked.elapsed();
    assert!(matches!(result, Err(KvError::Unavailable(_))), "{result:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    server.pause(false);
    let resumed = Instant::now();
    loop {
        match store.get(b"k").wait() {
            Ok(value) => break assert_eq!(value.as_deref(), Some(&b"v"[..])),
            Err(KvError::Unavailable(_)) if resumed.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("did not reconnect: {e}"),
        }
    }
}

#[test]
fn connecting_fails_clearly() {
    let server = TestServer::start();
    let url = server.url();
    let not_valid = |r: Result<RedisStore, KvError>| match r {
        Err(KvError::Failed(why)) => why,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected"),
    };
    assert!(not_valid(RedisStore::connect(&url, "a{b}")).contains("fleet"));
    assert!(not_valid(RedisStore::connect(&url, "a b")).contains("fleet"));
    assert!(not_valid(RedisStore::connect(&url, "")).contains("fleet"));
    assert!(not_valid(RedisStore::connect("http://127.0.0.1/", "f")).contains("redis://"));
    assert!(not_valid(RedisStore::connect("redis://:secret@[::1", "f")).contains("redis://"));
    // A password the server does not have.
    let why = not_valid(RedisStore::connect(
        &url.replace("redis://", "redis://:secret@"),
        "f",
    ));
    assert!(!why.contains("secret"), "{why}");
    // Another database on the same server is another store.
    let db1 = RedisStore::connect(&url.replace("/0", "/1"), "f").unwrap();
    db1.set(b"k", b"1", None).wait().unwrap();
    assert_eq!(server.store("f").get(b"k").wait(), Ok(None));
}

/// Operations per second on each backend, with 1 and 32 threads: `cargo test --release -p wisp
/// --lib redis_throughput -- --ignored --nocapture`. Figures only, nothing asserted.
#[test]
#[ignore]
fn redis_throughput() {
    let server = TestServer::start();
    let dir = std::env::temp_dir().join(format!("wisp-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let embedded: Arc<dyn Store> =
        Arc::new(crate::store::Embedded::open(&dir.join("kv.redb"), 16 << 20).unwrap());
    let redis: Arc<dyn Store> = Arc::new(server.store("bench"));
    let per_thread = |threads: usize| if threads == 1 { 5000 } else { 1000 };
    for (name, store) in [("embedded", &embedded), ("redis", &redis)] {
        for threads in [1, 32] {
            for op in ["increment", "increment+sync", "get"] {
                let n = per_thread(threads);
                let started = Instant::now();
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let store = store.clone();
                        std::thread::spawn(move || {
                            let key = format!("n{}", t % 8);
                            for _ in 0..n {
                                match op {
                                    "increment" => drop(
                                        store.increment(key.as_bytes(), 1, None).wait().unwrap(),
                                    ),
                                    "increment+sync" => {
                                        store.increment(key.as_bytes(), 1, None).wait().unwrap();
                                        store.sync().wait().unwrap();
                                    }
                                    _ => drop(store.get(key.as_bytes()).wait().unwrap()),
                                }
                            }
                        })
                    })
                    .collect();
                handles.into_iter().for_each(|h| h.join().unwrap());
                let rate = (threads * n) as f64 / started.elapsed().as_secs_f64();
                println!("{name:>8} {op:>15} {threads:>2} threads: {rate:>9.0} ops/s");
            }
        }
    }
    drop(embedded);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_store_starts_while_redis_is_away_and_connects_when_it_comes() {
    let mut server = TestServer::start();
    let url = server.url();
    server.kill();
    let asked = Instant::now();
    let store = RedisStore::connect(&url, "f").unwrap();
    assert!(asked.elapsed() < Duration::from_secs(4));
    // Away: every operation answers at once.
    let asked = Instant::now();
    match store.set(b"k", b"v", None).wait() {
        Err(KvError::Unavailable(why)) => assert!(why.contains("127.0.0.1"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.get(b"k").wait(),
        Err(KvError::Unavailable(_))
    ));
    assert!(asked.elapsed() < Duration::from_secs(1));
    server.restart();
    let started = Instant::now();
    loop {
        match store.set(b"k", b"v", None).wait() {
            Ok(()) => break,
            Err(KvError::Unavailable(_)) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("did not connect: {e}"),
        }
    }
    assert_eq!(store.get(b"k").wait().unwrap().as_deref(), Some(&b"v"[..]));
}
