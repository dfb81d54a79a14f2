//! The embedded backend's queues against a model, watches in the write's transaction, and what
//! survives reopening.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::queues::{Body, Push, QueueCounts, QueueKey, QueueOp, Queues, Source, Watch};
use super::*;

fn temp_db() -> (std::path::PathBuf, Embedded) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wisp-queues-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    (dir, db)
}

fn topic(function: &str, topic: &str) -> QueueKey {
    QueueKey::new(function, Source::Topic(topic.into()))
}

fn push(queue: &QueueKey, id: &str, payload: &[u8]) -> QueueOp {
    QueueOp::Push(Push {
        queue: queue.clone(),
        id: id.into(),
        body: Body::Message,
        payload: payload.into(),
    })
}

/// What a queue should hold: pending (seq → attempts) and dead (seq → attempts).
#[derive(Default, Debug)]
struct Model {
    pending: BTreeMap<u64, (String, u32)>,
    dead: BTreeMap<u64, (String, u32)>,
}

#[test]
fn queues_behave_like_a_model() {
    let (dir, db) = temp_db();
    let queues = [topic("a", "t"), topic("b", "t")];
    let mut models: [Model; 2] = Default::default();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut pushed = 0;
    for step in 0..2000 {
        let q = next(2) as usize;
        let (queue, model) = (&queues[q], &mut models[q]);
        let pick = |map: &BTreeMap<u64, (String, u32)>, r: u64| {
            (!map.is_empty()).then(|| *map.keys().nth(r as usize % map.len()).unwrap())
        };
        let r = next(1000);
        match next(6) {
            0 | 1 => {
                pushed += 1;
                let id = format!("m{pushed}");
                db.apply(vec![push(queue, &id, id.as_bytes())])
                    .wait()
                    .unwrap();
                let seq = db.peek(queue, usize::MAX).unwrap().last().unwrap().seq;
                model.pending.insert(seq, (id, 0));
            }
            2 => {
                if let Some(seq) = pick(&model.pending, r) {
                    db.apply(vec![QueueOp::Ack {
                        queue: queue.clone(),
                        seq,
                    }])
                    .wait()
                    .unwrap();
                    model.pending.remove(&seq);
                }
            }
            3 => {
                if let Some(seq) = pick(&model.pending, r) {
                    let attempts = model.pending[&seq].1 + 1;
                    let op = QueueOp::Retry {
                        queue: queue.clone(),
                        seq,
                        attempts,
                        not_before: 7,
                    };
                    db.apply(vec![op]).wait().unwrap();
                    model.pending.get_mut(&seq).unwrap().1 = attempts;
                }
            }
            4 => {
                if let Some(seq) = pick(&model.pending, r) {
                    let op = QueueOp::Bury {
                        queue: queue.clone(),
                        seq,
                        attempts: 9,
                        error: "no".into(),
                    };
                    db.apply(vec![op]).wait().unwrap();
                    let (id, _) = model.pending.remove(&seq).unwrap();
                    model.dead.insert(seq, (id, 9));
                }
            }
            _ => {
                if let Some(seq) = pick(&model.dead, r) {
                    let (id, _) = model.dead.remove(&seq).unwrap();
                    if r % 2 == 0 {
                        db.apply(vec![QueueOp::Replay {
                            queue: queue.clone(),
                            seq,
                        }])
                        .wait()
                        .unwrap();
                        model.pending.insert(seq, (id, 0));
                    } else {
                        db.apply(vec![QueueOp::Purge {
                            queue: queue.clone(),
                            seq,
                        }])
                        .wait()
                        .unwrap();
                    }
                }
            }
        }
        let entries = db.peek(queue, usize::MAX).unwrap();
        let seen: Vec<(u64, String, u32)> = entries
            .iter()
            .map(|e| (e.seq, e.id.clone(), e.attempts))
            .collect();
        let expected: Vec<(u64, String, u32)> = model
            .pending
            .iter()
            .map(|(s, (id, a))| (*s, id.clone(), *a))
            .collect();
        assert_eq!(seen, expected, "step {step}");
        for e in &entries {
            assert_eq!(e.payload, e.id.as_bytes(), "step {step}");
        }
        let dead: Vec<u64> = db
            .dead_letters(queue, usize::MAX)
            .unwrap()
            .iter()
            .map(|d| d.entry.seq)
            .collect();
        assert_eq!(
            dead,
            model.dead.keys().copied().collect::<Vec<_>>(),
            "step {step}"
        );
        let counts = QueueCounts {
            pending: model.pending.len() as u64,
            dead: model.dead.len() as u64,
        };
        assert_eq!(db.counts(queue), counts, "step {step}");
    }
    // Durable and counted again after reopening; new entries go after the old ones.
    db.sync().wait().unwrap();
    drop(db);
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    for (queue, model) in queues.iter().zip(&models) {
        let counts = db.counts(queue);
        assert_eq!(counts.pending, model.pending.len() as u64);
        assert_eq!(counts.dead, model.dead.len() as u64);
        db.apply(vec![push(queue, "after", b"x")]).wait().unwrap();
        let last = db.peek(queue, usize::MAX).unwrap().pop().unwrap();
        assert_eq!(last.id, "after");
        let highest = model.pending.keys().chain(model.dead.keys()).max();
        assert!(highest.is_none_or(|h| last.seq > *h));
    }
    db.apply(vec![QueueOp::Drop {
        queue: queues[0].clone(),
    }])
    .wait()
    .unwrap();
    assert_eq!(db.counts(&queues[0]), QueueCounts::default());
    assert!(db.peek(&queues[0], 10).unwrap().is_empty());
    assert!(db.dead_letters(&queues[0], 10).unwrap().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_watched_write_pushes_its_change_in_the_same_transaction() {
    let (dir, db) = temp_db();
    let db = Arc::new(db);
    let store: Arc<dyn Store> = db.clone();
    let queue = QueueKey::new(
        "watcher",
        Source::Kv {
            store: "s".into(),
            prefix: "w/".into(),
        },
    );
    let watch = Watch {
        namespace: namespace("s", None),
        prefix: b"w/".to_vec(),
        queue: queue.clone(),
    };
    db.set_watches(vec![watch], 2);
    let grants = |f| Grants::new(&store, f, &[], &["s".into()]);
    // The scopes alone are kept: the grants (and their references to the store) go.
    let writer = grants("writer").get(b"s").unwrap().clone();
    let watcher = grants("watcher").get(b"s").unwrap().clone();
    writer.set(b"w/1", b"one").wait().unwrap();
    writer.set(b"elsewhere", b"x").wait().unwrap();
    watcher.set(b"w/mine", b"not for me").wait().unwrap();
    assert!(writer.delete(b"w/1").wait().unwrap());
    assert!(!writer.delete(b"w/1").wait().unwrap());
    let changes: Vec<(Body, Vec<u8>)> = db
        .peek(&queue, 10)
        .unwrap()
        .into_iter()
        .map(|e| (e.body, e.payload))
        .collect();
    let change = |key: &[u8], deleted| Body::Change {
        key: key.to_vec(),
        deleted,
    };
    assert_eq!(
        changes,
        [
            (change(b"w/1", false), b"one".to_vec()),
            (change(b"w/1", true), Vec::new()),
        ]
    );
    // Full: the write is refused, and does not happen.
    assert_eq!(writer.set(b"w/2", b"two").wait(), Err(KvError::QueueFull));
    assert_eq!(writer.get(b"w/2").wait().unwrap(), None);
    assert_eq!(writer.increment(b"w/n", 1).wait(), Err(KvError::QueueFull));
    assert_eq!(db.counts(&queue).pending, 2);
    // Made durable with the write: both come back after reopening.
    db.sync().wait().unwrap();
    drop((writer, watcher, store, db));
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    assert_eq!(db.counts(&queue).pending, 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dead_letters_are_capped_and_results_expire() {
    let (dir, db) = temp_db();
    let queue = topic("f", "t");
    let total = queues_cap() + 5;
    for i in 0..total {
        db.apply(vec![push(&queue, &format!("m{i}"), b"x")])
            .wait()
            .unwrap();
        let seq = db.peek(&queue, 1).unwrap()[0].seq;
        let op = QueueOp::Bury {
            queue: queue.clone(),
            seq,
            attempts: 1,
            error: "e".into(),
        };
        db.apply(vec![op]).wait().unwrap();
    }
    let dead = db.dead_letters(&queue, usize::MAX).unwrap();
    assert_eq!(dead.len() as u64, queues_cap());
    assert_eq!(db.counts(&queue).dead, queues_cap());
    // The oldest went first.
    assert_eq!(dead[0].entry.id, "m5");
    for (i, at) in [(0, 100), (1, 200), (2, 300)] {
        let result = queues::CallResult {
            function: "f".into(),
            accepted_at: 1,
            done: Some(queues::Finished {
                at,
                status: 200,
                headers: Vec::new(),
                body: b"ok".to_vec(),
            }),
        };
        db.apply(vec![QueueOp::SetResult {
            id: format!("r{i}"),
            result,
        }])
        .wait()
        .unwrap();
    }
    assert_eq!(db.expire_results(150, 10).unwrap(), 1);
    assert!(db.result("r0").unwrap().is_none());
    assert_eq!(db.expire_results(0, 1).unwrap(), 1);
    assert!(db.result("r1").unwrap().is_none());
    assert_eq!(db.result("r2").unwrap().unwrap().done.unwrap().body, b"ok");
    std::fs::remove_dir_all(dir).unwrap();
}

fn queues_cap() -> u64 {
    embedded::MAX_DEAD_LETTERS
}
