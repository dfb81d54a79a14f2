//! What only the Redis queues have: devices that share them. Each test's devices are stores
//! of one fleet on one `redis-server`, each with its own device name. The suite both backends
//! pass is `store/queue_tests.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Listener as _;

use super::test_server::TestServer;
use super::*;
use crate::store::queues::{Body, Claim, Claimed, Push, QueueKey, QueueOp, Queues, Source, Tick};
use crate::store::unix_ms;

fn topic() -> QueueKey {
    QueueKey::new("sub", Source::Topic("t".into()))
}

fn push(id: &str) -> QueueOp {
    QueueOp::Push(Push {
        queue: topic(),
        id: id.into(),
        body: Body::Message,
        payload: id.as_bytes().into(),
    })
}

fn claim(device: &RedisStore, want: usize, window: usize, held: &[u64]) -> Claimed {
    let claim = Claim {
        want,
        window,
        held: held.to_vec(),
    };
    device.claim(&topic(), claim).wait().unwrap()
}

fn ack(seq: u64) -> QueueOp {
    QueueOp::Ack {
        queue: topic(),
        seq,
    }
}

fn ids(claimed: &Claimed) -> Vec<String> {
    claimed.entries.iter().map(|e| e.id.clone()).collect()
}

const LONG: Duration = Duration::from_secs(60);

#[test]
fn devices_claiming_one_queue_never_get_the_same_entry() {
    let server = TestServer::start();
    let devices: Vec<Arc<RedisStore>> = (0..3)
        .map(|i| Arc::new(server.device("f", &format!("d{i}"), LONG)))
        .collect();
    let total = 600;
    for batch in (0..total).collect::<Vec<_>>().chunks(100) {
        let ops = batch.iter().map(|i| push(&format!("m{i}"))).collect();
        devices[0].apply(ops).wait().unwrap();
    }
    let seen: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let threads: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(i, device)| {
            let (device, seen) = (device.clone(), seen.clone());
            std::thread::spawn(move || {
                loop {
                    // A window of 8 across the fleet; each device takes up to 3 at a time.
                    let claimed = claim(&device, 3, 8, &[]);
                    if claimed.entries.is_empty() {
                        if device.counts(&topic()).pending == 0 {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    let mut settle = Vec::new();
                    for entry in claimed.entries {
                        let before = seen.lock().unwrap().insert(entry.id, format!("d{i}"));
                        assert_eq!(before, None, "delivered twice");
                        settle.push(ack(entry.seq));
                    }
                    device.apply(settle).wait().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), total);
    for i in 0..3 {
        let mine = seen.values().filter(|d| **d == format!("d{i}")).count();
        assert!(mine > 0, "device d{i} delivered nothing");
    }
}

#[test]
fn a_window_of_one_is_one_delivery_at_a_time_in_order_across_the_fleet() {
    let server = TestServer::start();
    let (a, b) = (server.device("f", "a", LONG), server.device("f", "b", LONG));
    a.apply((0..4).map(|i| push(&format!("m{i}"))).collect())
        .wait()
        .unwrap();
    let first = claim(&a, 1, 1, &[]);
    assert_eq!(ids(&first), ["m0"]);
    assert!(claim(&b, 1, 1, &[]).entries.is_empty());
    // m0 fails on a: it keeps its place, and b gets it (not m1) once its backoff is over.
    let retry = QueueOp::Retry {
        queue: topic(),
        seq: first.entries[0].seq,
        attempts: 1,
        not_before: unix_ms() + 200,
    };
    a.apply(vec![retry]).wait().unwrap();
    let waiting = claim(&b, 1, 1, &[]);
    assert!(waiting.entries.is_empty());
    assert!(waiting.wake_at.is_some());
    std::thread::sleep(Duration::from_millis(250));
    let again = claim(&b, 1, 1, &[]);
    assert_eq!(ids(&again), ["m0"]);
    assert_eq!(again.entries[0].attempts, 1);
    // A retry by a that comes late (b has it now) changes nothing.
    let late = QueueOp::Retry {
        queue: topic(),
        seq: first.entries[0].seq,
        attempts: 1,
        not_before: unix_ms(),
    };
    a.apply(vec![late]).wait().unwrap();
    assert!(claim(&a, 1, 1, &[]).entries.is_empty());
    b.apply(vec![ack(again.entries[0].seq)]).wait().unwrap();
    let mut order = Vec::new();
    for device in [&a, &b, &a] {
        let claimed = claim(device, 1, 1, &[]);
        order.extend(ids(&claimed));
        device
            .apply(vec![ack(claimed.entries[0].seq)])
            .wait()
            .unwrap();
    }
    assert_eq!(order, ["m1", "m2", "m3"]);
}

#[test]
fn entries_of_a_device_that_went_silent_go_to_another_after_the_visibility_timeout() {
    let server = TestServer::start();
    let visibility = Duration::from_millis(400);
    let a = server.device("f", "a", visibility);
    let b = server.device("f", "b", visibility);
    a.apply(vec![push("m0"), push("m1")]).wait().unwrap();
    let held = claim(&a, 2, 2, &[]);
    assert_eq!(ids(&held), ["m0", "m1"]);
    let seqs: Vec<u64> = held.entries.iter().map(|e| e.seq).collect();
    // a keeps m0 alive, and goes silent about m1.
    let started = Instant::now();
    let mut took_m1 = None;
    while started.elapsed() < Duration::from_secs(3) {
        a.touch(&topic(), &seqs[..1]).wait().unwrap();
        let claimed = claim(&b, 2, 2, &[]);
        if !claimed.entries.is_empty() {
            took_m1 = Some((started.elapsed(), claimed));
            break;
        }
        // Not before the timeout: b says when to look again.
        assert!(claimed.wake_at.is_some());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (after, claimed) = took_m1.expect("b never took m1 over");
    assert_eq!(ids(&claimed), ["m1"]);
    assert!(after >= Duration::from_millis(350), "{after:?}");
    // m0 stays a's while a says it is alive.
    std::thread::sleep(Duration::from_millis(200));
    a.touch(&topic(), &seqs[..1]).wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    a.touch(&topic(), &seqs[..1]).wait().unwrap();
    assert!(claim(&b, 2, 2, &[seqs[1]]).entries.is_empty());
    // A device that restarts under its name takes its own entries back at once (and b keeps
    // m1, which it says it is delivering).
    b.touch(&topic(), &seqs[1..]).wait().unwrap();
    drop(a);
    let a = server.device("f", "a", visibility);
    assert_eq!(ids(&claim(&a, 2, 2, &[])), ["m0"]);
}

#[test]
fn a_commit_past_the_cap_changes_nothing() {
    let server = TestServer::start();
    let (a, b) = (server.device("f", "a", LONG), server.device("f", "b", LONG));
    for device in [&a, &b] {
        device.set_watches(Vec::new(), 3);
    }
    a.apply(vec![push("m0"), push("m1")]).wait().unwrap();
    let both = vec![push("m2"), push("m3")];
    assert_eq!(b.apply(both).wait(), Err(KvError::QueueFull));
    let result = QueueOp::SetResult {
        id: "r".into(),
        result: crate::store::queues::CallResult {
            function: "f".into(),
            accepted_at: 1,
            done: None,
        },
    };
    // All or nothing: the result that came with a push too many is not kept either.
    assert_eq!(
        b.apply(vec![result.clone(), push("m2"), push("m3")]).wait(),
        Err(KvError::QueueFull)
    );
    assert_eq!(b.result("r").unwrap(), None);
    b.apply(vec![result, push("m2")]).wait().unwrap();
    assert!(b.result("r").unwrap().is_some());
    assert_eq!(a.peek(&topic(), 10).unwrap().len(), 3);
}

#[test]
fn every_device_sees_the_counts_and_is_woken_for_new_work() {
    let server = TestServer::start();
    let (a, b) = (server.device("f", "a", LONG), server.device("f", "b", LONG));
    let calls = QueueKey::new("sub", Source::Async);
    let activity = b.activity().unwrap();
    let signal = b.signal(&topic());
    let (woken, listening) = (activity.listen(), signal.listen());
    a.apply(vec![push("m0")]).wait().unwrap();
    // a knows at once; b within a refresh.
    assert_eq!(a.counts(&topic()).pending, 1);
    let deadline = Instant::now() + REFRESH * 3;
    while b.counts(&topic()).pending != 1 {
        assert!(Instant::now() < deadline, "b never saw the count");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(woken.wait_timeout(REFRESH * 2).is_some());
    assert!(listening.wait_timeout(REFRESH * 2).is_some());
    assert_eq!(b.queues(), vec![(topic(), a.counts(&topic()))]);
    assert_eq!(b.counts(&calls).pending, 0);
}

#[test]
fn a_fleet_tick_is_leased_to_one_device_until_it_ends_or_its_device_goes_silent() {
    let server = TestServer::start();
    let lease = Duration::from_millis(400);
    let (a, b) = (
        server.device("f", "a", lease),
        server.device("f", "b", lease),
    );
    let timer = "f every 1s";
    assert_eq!(a.claim_tick(timer, 1000, true).wait(), Ok(Tick::Run));
    // b wakes for the same tick: it is a's.
    let Ok(Tick::Busy { older, retry_at }) = b.claim_tick(timer, 1000, true).wait() else {
        panic!("not busy");
    };
    assert!(!older);
    assert!(retry_at > unix_ms() && retry_at <= unix_ms() + 400);
    // a renews its lease while it runs; its run ends, and the tick is done for everyone.
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(a.claim_tick(timer, 1000, true).wait(), Ok(Tick::Run));
    std::thread::sleep(Duration::from_millis(250));
    assert!(matches!(
        b.claim_tick(timer, 1000, true).wait(),
        Ok(Tick::Busy { .. })
    ));
    a.finish_tick(timer, 1000, true).wait().unwrap();
    assert_eq!(b.claim_tick(timer, 1000, true).wait(), Ok(Tick::Done));
    // a dies running the next tick: the tick after it is skipped while the lease holds, and
    // b takes the timer over once it runs out.
    assert_eq!(a.claim_tick(timer, 2000, true).wait(), Ok(Tick::Run));
    drop(a);
    let Ok(Tick::Busy { older, retry_at }) = b.claim_tick(timer, 3000, true).wait() else {
        panic!("not busy");
    };
    assert!(older);
    std::thread::sleep(Duration::from_millis(
        retry_at.saturating_sub(unix_ms()) + 20,
    ));
    assert_eq!(b.claim_tick(timer, 3000, true).wait(), Ok(Tick::Run));
    b.finish_tick(timer, 3000, true).wait().unwrap();
    assert_eq!(b.timer_tick(timer, true).unwrap(), Some(3000));
    // A device's own timer is its own: every device runs each tick.
    assert_eq!(b.claim_tick(timer, 4000, false).wait(), Ok(Tick::Run));
    let c = server.device("f", "c", lease);
    assert_eq!(c.claim_tick(timer, 4000, false).wait(), Ok(Tick::Run));
    assert_eq!(c.claim_tick(timer, 4000, false).wait(), Ok(Tick::Done));
}

#[test]
fn claims_and_commits_while_redis_is_away_are_unavailable() {
    let mut server = TestServer::start();
    let a = server.device("f", "a", LONG);
    a.apply(vec![push("m0")]).wait().unwrap();
    server.kill();
    std::thread::sleep(Duration::from_millis(200));
    let unavailable = |r: Result<(), KvError>| matches!(r, Err(KvError::Unavailable(_)));
    assert!(unavailable(
        a.claim(
            &topic(),
            Claim {
                want: 1,
                window: 1,
                held: Vec::new(),
            }
        )
        .wait()
        .map(drop)
    ));
    assert!(unavailable(a.apply(vec![push("m1")]).wait()));
    assert!(unavailable(a.claim_tick("t", 1, true).wait().map(drop)));
    // The counts stay as they were.
    assert_eq!(a.counts(&topic()).pending, 1);
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let claimed = loop {
        match a
            .claim(
                &topic(),
                Claim {
                    want: 1,
                    window: 1,
                    held: Vec::new(),
                },
            )
            .wait()
        {
            Ok(claimed) => break claimed,
            Err(KvError::Unavailable(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(ids(&claimed), ["m0"]);
}

#[test]
fn every_watched_write_of_every_device_has_its_event_in_order() {
    let server = TestServer::start();
    let watcher = QueueKey::new(
        "audit",
        Source::Kv {
            store: "s".into(),
            prefix: "n".into(),
        },
    );
    let devices: Vec<Arc<RedisStore>> = (0..2)
        .map(|i| Arc::new(server.device("f", &format!("d{i}"), LONG)))
        .collect();
    for device in &devices {
        let watch = crate::store::queues::Watch {
            namespace: crate::store::namespace("s", None),
            prefix: b"n".to_vec(),
            queue: watcher.clone(),
        };
        device.set_watches(vec![watch], 10_000);
    }
    let key = [crate::store::namespace("s", None), b"n".to_vec()].concat();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (device, key) = (devices[t % 2].clone(), key.clone());
            std::thread::spawn(move || {
                for _ in 0..100 {
                    device.increment(&key, 1, Some("counter")).wait().unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    // One event per increment, in the order of the writes: each carries the value it made.
    let events = devices[0].peek(&watcher, usize::MAX).unwrap();
    let values: Vec<String> = events
        .iter()
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect();
    let expected: Vec<String> = (1..=400).map(|n| n.to_string()).collect();
    assert_eq!(values, expected);
    assert!(events.iter().all(|e| e.body
        == Body::Change {
            key: b"n".to_vec(),
            deleted: false
        }));
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 400);
}
