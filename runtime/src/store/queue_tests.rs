//! The queues' suite, run on both backends as the store's is (`on_both!`): the queues against
//! a model, watches in the write's transaction, dead letters and results; then what survives
//! reopening the embedded backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::queues::{
    Body, Claim, MAX_DEAD_LETTERS, Push, QueueCounts, QueueKey, QueueOp, Queues, Source, Tick,
    Watch,
};
use super::test_support::temp_db;
use super::*;

on_both!(
    queues_behave_like_a_model,
    a_watched_write_pushes_its_change_with_the_write,
    dead_letters_are_capped_and_results_expire,
    claims_take_the_due_entries_of_the_window,
    timer_ticks_run_once,
);

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

/// The queues against a model: random pushes, acknowledgements, retries, burials, replays and
/// purges over two queues. A replayed letter goes back to its place on the embedded backend
/// and to the end of its queue on Redis (a stream only grows at its end): the model takes the
/// place the backend gives it, and checks everything else.
fn queues_behave_like_a_model(db: Arc<dyn Backend>) {
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
                        let entries = db.peek(queue, usize::MAX).unwrap();
                        let back = entries.iter().find(|e| e.id == id).unwrap();
                        assert_eq!(back.attempts, 0, "step {step}");
                        model.pending.insert(back.seq, (id, 0));
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
        let dead: Vec<(u64, String, u32)> = db
            .dead_letters(queue, usize::MAX)
            .unwrap()
            .iter()
            .map(|d| (d.entry.seq, d.entry.id.clone(), d.entry.attempts))
            .collect();
        let expected: Vec<(u64, String, u32)> = model
            .dead
            .iter()
            .map(|(s, (id, a))| (*s, id.clone(), *a))
            .collect();
        assert_eq!(dead, expected, "step {step}");
        let counts = QueueCounts {
            pending: model.pending.len() as u64,
            dead: model.dead.len() as u64,
        };
        assert_eq!(db.counts(queue), counts, "step {step}");
    }
    let listed: Vec<QueueKey> = db.queues().into_iter().map(|(q, _)| q).collect();
    let holding: Vec<QueueKey> = queues
        .iter()
        .zip(&models)
        .filter(|(_, m)| !m.pending.is_empty() || !m.dead.is_empty())
        .map(|(q, _)| q.clone())
        .collect();
    assert_eq!(listed, holding);
    db.apply(vec![QueueOp::Drop {
        queue: queues[0].clone(),
    }])
    .wait()
    .unwrap();
    assert_eq!(db.counts(&queues[0]), QueueCounts::default());
    assert!(db.peek(&queues[0], 10).unwrap().is_empty());
    assert!(db.dead_letters(&queues[0], 10).unwrap().is_empty());
}

#[test]
fn queues_survive_reopening() {
    let (dir, db) = temp_db();
    let queue = topic("a", "t");
    for i in 0..5 {
        db.apply(vec![push(&queue, &format!("m{i}"), b"x")])
            .wait()
            .unwrap();
    }
    let seqs: Vec<u64> = db.peek(&queue, 10).unwrap().iter().map(|e| e.seq).collect();
    let bury = QueueOp::Bury {
        queue: queue.clone(),
        seq: seqs[1],
        attempts: 2,
        error: "e".into(),
    };
    db.apply(vec![bury]).wait().unwrap();
    // Durable and counted again after reopening; new entries go after the old ones.
    db.sync().wait().unwrap();
    drop(db);
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    assert_eq!(
        db.counts(&queue),
        QueueCounts {
            pending: 4,
            dead: 1
        }
    );
    db.apply(vec![push(&queue, "after", b"x")]).wait().unwrap();
    let last = db.peek(&queue, usize::MAX).unwrap().pop().unwrap();
    assert_eq!(last.id, "after");
    assert!(last.seq > seqs[4]);
    std::fs::remove_dir_all(dir).unwrap();
}

fn a_watched_write_pushes_its_change_with_the_write(db: Arc<dyn Backend>) {
    let store: Arc<dyn Store> = db.clone().as_store();
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
    db.set_watches(vec![watch], 3);
    let grants = |f| Grants::new(&store, f, &[], &["s".into()]);
    // The scopes alone are kept: the grants (and their references to the store) go.
    let writer = grants("writer").get(b"s").unwrap().clone();
    let watcher = grants("watcher").get(b"s").unwrap().clone();
    writer.set(b"w/1", b"one").wait().unwrap();
    writer.set(b"elsewhere", b"x").wait().unwrap();
    watcher.set(b"w/mine", b"not for me").wait().unwrap();
    assert!(writer.delete(b"w/1").wait().unwrap());
    assert!(!writer.delete(b"w/1").wait().unwrap());
    assert!(
        !writer
            .compare_and_swap(b"w/c", Some(b"x"), None)
            .wait()
            .unwrap()
    );
    assert_eq!(writer.increment(b"w/n", 5).wait(), Ok(5));
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
            (change(b"w/n", false), b"5".to_vec()),
        ]
    );
    // Full: the write is refused, and does not happen.
    assert_eq!(writer.set(b"w/2", b"two").wait(), Err(KvError::QueueFull));
    assert_eq!(writer.get(b"w/2").wait().unwrap(), None);
    assert_eq!(writer.increment(b"w/n", 1).wait(), Err(KvError::QueueFull));
    assert_eq!(
        writer.get(b"w/n").wait().unwrap().as_deref(),
        Some(&b"5"[..])
    );
    assert_eq!(
        writer.compare_and_swap(b"w/n", Some(b"5"), None).wait(),
        Err(KvError::QueueFull)
    );
    assert_eq!(writer.delete(b"w/n").wait(), Err(KvError::QueueFull));
    assert!(writer.exists(b"w/n").wait().unwrap());
    // Writes elsewhere, and the watcher's own, go on.
    writer.set(b"elsewhere", b"y").wait().unwrap();
    watcher.set(b"w/mine", b"again").wait().unwrap();
    assert_eq!(db.counts(&queue).pending, 3);
}

#[test]
fn a_watched_change_is_durable_with_its_write() {
    let (dir, db) = temp_db();
    let db = Arc::new(db);
    let queue = QueueKey::new(
        "watcher",
        Source::Kv {
            store: "s".into(),
            prefix: "".into(),
        },
    );
    let watch = Watch {
        namespace: namespace("s", None),
        prefix: Vec::new(),
        queue: queue.clone(),
    };
    db.set_watches(vec![watch], 10);
    let key = [namespace("s", None), b"k".to_vec()].concat();
    db.set(&key, b"v", Some("writer")).wait().unwrap();
    db.sync().wait().unwrap();
    drop(db);
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    assert_eq!(db.counts(&queue).pending, 1);
    std::fs::remove_dir_all(dir).unwrap();
}

fn dead_letters_are_capped_and_results_expire(db: Arc<dyn Backend>) {
    let queue = topic("f", "t");
    let total = MAX_DEAD_LETTERS + 5;
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
    assert_eq!(dead.len() as u64, MAX_DEAD_LETTERS);
    assert_eq!(db.counts(&queue).dead, MAX_DEAD_LETTERS);
    // The oldest went first.
    assert_eq!(dead[0].entry.id, "m5");
    assert_eq!(dead[0].error, "e");
    assert!(dead[0].dead_at > 0);
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
}

/// A claim hands out the due entries of the window that nobody holds, at most as many as
/// asked for; an entry waiting out its backoff keeps its place and says when it is due.
fn claims_take_the_due_entries_of_the_window(db: Arc<dyn Backend>) {
    let queue = topic("f", "t");
    for i in 0..5 {
        db.apply(vec![push(&queue, &format!("m{i}"), b"x")])
            .wait()
            .unwrap();
    }
    let claim = |want, window, held: &[u64]| {
        let claim = Claim {
            want,
            window,
            held: held.to_vec(),
        };
        db.claim(&queue, claim).wait().unwrap()
    };
    let ids = |claimed: &queues::Claimed| -> Vec<String> {
        claimed.entries.iter().map(|e| e.id.clone()).collect()
    };
    let first = claim(1, 2, &[]);
    assert_eq!(ids(&first), ["m0"]);
    let seq0 = first.entries[0].seq;
    // m0 is held: the window of 2 has room for m1 only.
    let second = claim(5, 2, &[seq0]);
    assert_eq!(ids(&second), ["m1"]);
    let seq1 = second.entries[0].seq;
    assert!(claim(5, 2, &[seq0, seq1]).entries.is_empty());
    // m0 fails and waits 300 ms: it keeps its place, so m2 stays behind it.
    let retry = QueueOp::Retry {
        queue: queue.clone(),
        seq: seq0,
        attempts: 1,
        not_before: unix_ms() + 300,
    };
    db.apply(vec![retry]).wait().unwrap();
    let waiting = claim(5, 2, &[seq1]);
    assert!(waiting.entries.is_empty(), "{waiting:?}");
    let wake_at = waiting.wake_at.expect("a wake-up for the backoff");
    assert!(
        wake_at > unix_ms() + 100 && wake_at <= unix_ms() + 400,
        "{wake_at}"
    );
    std::thread::sleep(std::time::Duration::from_millis(350));
    let again = claim(5, 2, &[seq1]);
    assert_eq!(ids(&again), ["m0"]);
    assert_eq!(again.entries[0].attempts, 1);
    // Settled, both leave the window to the next ones, in order.
    let acks = [seq0, seq1].map(|seq| QueueOp::Ack {
        queue: queue.clone(),
        seq,
    });
    db.apply(acks.to_vec()).wait().unwrap();
    assert_eq!(ids(&claim(5, 3, &[])), ["m2", "m3", "m4"]);
}

/// A tick is run once: claimed, it is not claimed again.
fn timer_ticks_run_once(db: Arc<dyn Backend>) {
    assert_eq!(db.timer_tick("f every 1s", true).unwrap(), None);
    assert_eq!(
        db.claim_tick("f every 1s", 1000, true).wait(),
        Ok(Tick::Run)
    );
    db.finish_tick("f every 1s", 1000, true).wait().unwrap();
    assert_eq!(
        db.claim_tick("f every 1s", 1000, true).wait(),
        Ok(Tick::Done)
    );
    assert_eq!(
        db.claim_tick("f every 1s", 900, true).wait(),
        Ok(Tick::Done)
    );
    assert_eq!(db.timer_tick("f every 1s", true).unwrap(), Some(1000));
    assert_eq!(
        db.claim_tick("f every 1s", 2000, true).wait(),
        Ok(Tick::Run)
    );
    db.finish_tick("f every 1s", 2000, true).wait().unwrap();
    assert_eq!(db.timer_tick("f every 1s", true).unwrap(), Some(2000));
    // A device's own timer is recorded when its run starts.
    assert_eq!(
        db.claim_tick("g every 1s", 1000, false).wait(),
        Ok(Tick::Run)
    );
    assert_eq!(db.timer_tick("g every 1s", false).unwrap(), Some(1000));
    assert_eq!(
        db.claim_tick("g every 1s", 1000, false).wait(),
        Ok(Tick::Done)
    );
}
