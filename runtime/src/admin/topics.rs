//! Topics and dead letters, for the operator:
//!
//! - `GET /_wisp/topics`: every topic, its subscribers, and per subscriber the messages
//!   waiting, in flight and dead;
//! - `POST /_wisp/topics/NAME`: publish the body to NAME;
//! - `GET|DELETE /_wisp/dead-letters[?function=F&source=S&id=ID]`: list or purge dead letters,
//!   and `POST /_wisp/dead-letters/replay[?...]` to put them back in their queues;
//!   `/_wisp/topics/NAME/dead-letters[/replay]` is the same for one topic's subscribers.
//!
//! A source is `topic:NAME`, `kv:STORE:PREFIX` or `async`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Value, json};

use super::{Admin, error, json_response, query_value};
use crate::engine::{MAX_MESSAGE, Refused, valid_topic};
use crate::http::{Request, Response};
use crate::metrics::{self, QueueFigures, TimerFigures};
use crate::store::KvError;
use crate::store::queues::QueueCounts;
use crate::store::queues::{Body, DeadLetter, Push, QueueKey, QueueOp, Source};
use crate::wagi::percent_decode;

/// Answers `METHOD /_wisp/{segments}` for `topics/...` and `dead-letters/...`.
pub async fn handle(admin: &Admin, request: Request, segments: &[&str]) -> Response {
    let method = request.method.as_str();
    match (method, segments) {
        ("GET", ["topics"]) => list(admin),
        ("POST", ["topics", topic]) => publish(admin, topic, request.body).await,
        (_, ["topics", topic, "dead-letters", rest @ ..]) => {
            let source = Source::Topic(topic.to_string());
            dead_letters(admin, &request, rest, Some(source)).await
        }
        (_, ["dead-letters", rest @ ..]) => {
            let source = match query_value(&request, "source") {
                Some(s) => match Source::parse(&percent_decode(s, true)) {
                    Some(source) => Some(source),
                    None => return error(400, "source is topic:NAME, kv:STORE:PREFIX or async"),
                },
                None => None,
            };
            dead_letters(admin, &request, rest, source).await
        }
        (_, ["topics"] | ["topics", _]) => {
            error(405, format!("{method} is not allowed on {}", request.path))
        }
        _ => error(404, format!("no admin endpoint {}", request.path)),
    }
}

fn subscriber(admin: &Admin, queue: &QueueKey, counts: QueueCounts, subscribed: bool) -> Value {
    let state = admin.ctx.queue_state(queue);
    json!({
        "function": queue.function,
        "subscribed": subscribed,
        "depth": counts.pending,
        "in_flight": state.stats.in_flight.load(Relaxed),
        "dead_letters": counts.dead,
        "delivered": state.stats.delivered.load(Relaxed),
        "retried": state.stats.retried.load(Relaxed),
    })
}

/// Every topic with a subscriber, or with messages kept for a function that no longer
/// subscribes.
fn list(admin: &Admin) -> Response {
    let backend = &admin.ctx.backend;
    let mut topics: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut seen = Vec::new();
    for (topic, queues) in admin.ctx.topics.all() {
        let entry = topics.entry(topic).or_default();
        for queue in queues {
            entry.push(subscriber(admin, &queue, backend.counts(&queue), true));
            seen.push(queue);
        }
    }
    for (queue, counts) in backend.queues() {
        if let Source::Topic(topic) = &queue.source
            && !seen.contains(&queue)
        {
            let entry = topics.entry(topic.clone()).or_default();
            entry.push(subscriber(admin, &queue, counts, false));
        }
    }
    let list: Vec<Value> = topics
        .into_iter()
        .map(|(name, subscribers)| json!({ "name": name, "subscribers": subscribers }))
        .collect();
    let unrouted = admin.ctx.topics.unrouted.load(Relaxed);
    json_response(
        200,
        &json!({ "topics": list, "max_depth": admin.ctx.topics.cap(), "unrouted": unrouted }),
    )
}

/// Publishes `payload` to `topic` as the operator, durably.
async fn publish(admin: &Admin, topic: &str, payload: Vec<u8>) -> Response {
    if !valid_topic(topic.as_bytes()) {
        return error(400, format!("invalid topic name `{topic}`"));
    }
    if payload.len() > MAX_MESSAGE {
        return error(413, format!("a message is at most {MAX_MESSAGE} bytes"));
    }
    let topics = admin.ctx.topics.clone();
    let reservation = match topics.reserve(topic) {
        Ok(reservation) => reservation,
        Err(Refused::QueueFull) | Err(Refused::NotAllowed) => {
            return error(
                503,
                format!("topic `{topic}` is full: a subscriber is behind"),
            )
            .header("Retry-After", "1");
        }
    };
    let queues = topics.subscribers(topic);
    let id = topics.message_id();
    let payload: std::sync::Arc<[u8]> = payload.into();
    let ops: Vec<QueueOp> = queues
        .iter()
        .map(|queue| {
            QueueOp::Push(Push {
                queue: queue.clone(),
                id: id.clone(),
                body: Body::Message,
                payload: payload.clone(),
            })
        })
        .collect();
    if ops.is_empty() {
        topics.unrouted.fetch_add(1, Relaxed);
    }
    let backend = &admin.ctx.backend;
    let stored = match backend.apply(ops).get().await {
        Ok(()) => backend.sync().get().await,
        Err(e) => Err(e),
    };
    drop(reservation);
    match stored {
        Ok(()) => json_response(
            202,
            &json!({ "id": id, "topic": topic, "subscribers": queues.len() }),
        ),
        Err(e) => store_error(format!("cannot store the message: {e}"), &e),
    }
}

/// The queues holding dead letters that match the request's `function` and `source`.
fn matching(admin: &Admin, request: &Request, source: &Option<Source>) -> Vec<QueueKey> {
    let function = query_value(request, "function").map(|f| percent_decode(f, true));
    admin
        .ctx
        .backend
        .queues()
        .into_iter()
        .filter(|(queue, counts)| {
            counts.dead > 0
                && function.as_ref().is_none_or(|f| *f == queue.function)
                && source.as_ref().is_none_or(|s| *s == queue.source)
        })
        .map(|(queue, _)| queue)
        .collect()
}

fn letter_info(queue: &QueueKey, letter: &DeadLetter) -> Value {
    let e = &letter.entry;
    let mut info = json!({
        "function": queue.function,
        "source": queue.source.to_string(),
        "id": e.id,
        "attempts": e.attempts,
        "error": letter.error,
        "pushed_at": e.pushed_at,
        "dead_at": letter.dead_at,
        "size": e.payload.len(),
    });
    match std::str::from_utf8(&e.payload) {
        Ok(text) => info["payload"] = json!(text),
        Err(_) => {
            let hex: String = e.payload.iter().map(|b| format!("{b:02x}")).collect();
            info["payload_hex"] = json!(hex);
        }
    }
    if let Body::Change { key, deleted } = &e.body {
        info["key"] = json!(String::from_utf8_lossy(key));
        info["op"] = json!(if *deleted { "delete" } else { "set" });
    }
    info
}

async fn dead_letters(
    admin: &Admin,
    request: &Request,
    rest: &[&str],
    source: Option<Source>,
) -> Response {
    let op = match (request.method.as_str(), rest) {
        ("GET", []) => None,
        ("DELETE", []) => Some(false),
        ("POST", ["replay"]) => Some(true),
        (method, _) => {
            return error(405, format!("{method} is not allowed on {}", request.path));
        }
    };
    let id = query_value(request, "id").map(|i| percent_decode(i, true));
    let queues = matching(admin, request, &source);
    let backend = admin.ctx.backend.clone();
    let listed = smol::unblock(move || {
        let mut all = Vec::new();
        for queue in queues {
            let letters = backend.dead_letters(&queue, usize::MAX)?;
            all.extend(letters.into_iter().map(|l| (queue.clone(), l)));
        }
        Ok::<_, crate::store::KvError>(all)
    })
    .await;
    let letters: Vec<(QueueKey, DeadLetter)> = match listed {
        Ok(all) => all
            .into_iter()
            .filter(|(_, l)| id.as_ref().is_none_or(|id| *id == l.entry.id))
            .collect(),
        Err(e) => return store_error(e.to_string(), &e),
    };
    let Some(replay) = op else {
        let list: Vec<Value> = letters.iter().map(|(q, l)| letter_info(q, l)).collect();
        return json_response(200, &json!({ "dead_letters": list }));
    };
    let count = letters.len();
    let ops: Vec<QueueOp> = letters
        .into_iter()
        .map(|(queue, letter)| {
            let seq = letter.entry.seq;
            if replay {
                QueueOp::Replay { queue, seq }
            } else {
                QueueOp::Purge { queue, seq }
            }
        })
        .collect();
    let backend = &admin.ctx.backend;
    let done = match backend.apply(ops).get().await {
        Ok(()) => backend.sync().get().await,
        Err(e) => Err(e),
    };
    match done {
        Ok(()) if replay => json_response(200, &json!({ "replayed": count })),
        Ok(()) => json_response(200, &json!({ "purged": count })),
        Err(e) => store_error(e.to_string(), &e),
    }
}

/// The answer to a failure of the queues: `503` while it may pass (the fleet's Redis away, a
/// queue full), `500` otherwise.
fn store_error(why: String, e: &KvError) -> Response {
    match e {
        KvError::Unavailable(_) | KvError::QueueFull => error(503, why).header("Retry-After", "1"),
        _ => error(500, why),
    }
}

/// The Prometheus text of the queues and timers.
pub fn metrics(admin: &Admin) -> String {
    let ctx = &admin.ctx;
    let mut queues: BTreeMap<QueueKey, QueueCounts> = ctx.backend.queues().into_iter().collect();
    let states = ctx.queue_states();
    for (queue, _) in &states {
        queues.entry(queue.clone()).or_default();
    }
    let states: BTreeMap<QueueKey, _> = states.into_iter().collect();
    // Every function with a route has a queue of asynchronous calls; most never get one.
    let held: Vec<_> = queues
        .iter()
        .map(|(queue, counts)| {
            let state = states.get(queue).cloned().unwrap_or_default();
            (queue, *counts, state)
        })
        .filter(|(queue, counts, state)| {
            queue.source != Source::Async
                || *counts != QueueCounts::default()
                || !state.stats.untouched()
        })
        .collect();
    let figures: Vec<QueueFigures> = held
        .iter()
        .map(|(queue, counts, state)| QueueFigures {
            function: &queue.function,
            source: queue.source.to_string(),
            depth: counts.pending,
            dead: counts.dead,
            stats: &state.stats,
        })
        .collect();
    let timers = ctx.timer_states();
    let timer_figures: Vec<TimerFigures> = timers
        .iter()
        .map(|(key, stats)| {
            let (function, timer) = key.split_once(' ').unwrap_or((key, ""));
            TimerFigures {
                function,
                timer,
                stats,
            }
        })
        .collect();
    let unrouted = ctx.topics.unrouted.load(Relaxed);
    metrics::render_events(&figures, &timer_figures, unrouted)
}
