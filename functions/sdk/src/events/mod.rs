//! Events: what invoked the function, when it was not an HTTP request.
//!
//! Besides HTTP requests, the host invokes a function for messages on the topics it subscribes
//! to (`"topics"` in its configuration), for the ticks of its timers (`"timers"`) and for
//! changes to the keys it watches (`"watch"`). Every such event arrives as an HTTP request
//! would: a `POST` with an empty path and query, the event's payload as the body, and
//! environment variables that say what happened. [`Request::event`] reads them:
//!
//! ```
//! use wisp_sdk::events::{Event, KvOp};
//! use wisp_sdk::{Request, Response};
//!
//! fn handle(req: Request) -> Response {
//!     match req.event() {
//!         Event::Http => Response::text(200, "an HTTP request\n"),
//!         Event::Topic(message) => {
//!             // The payload is the body; a redelivery has the same id, and attempt 2 or more.
//!             let len = req.body().len();
//!             wisp_sdk::log(format_args!("{} #{}: {len} bytes", message.topic, message.id));
//!             Response::new(204)
//!         }
//!         Event::Timer(tick) => {
//!             wisp_sdk::log(format_args!("{} at {} ms", tick.schedule, tick.scheduled_at_ms));
//!             Response::new(204)
//!         }
//!         Event::Kv(change) if change.op == KvOp::Delete => Response::new(204),
//!         Event::Kv(change) => {
//!             // The body is the key's new value.
//!             wisp_sdk::log(format_args!("{:?} changed in {}", change.key_str(), change.store));
//!             Response::new(204)
//!         }
//!         _ => Response::new(204),
//!     }
//! }
//! # let env = [("WISP_TRIGGER", "timer"), ("WISP_TIMER", "every 10s")];
//! # let req = Request::new(env, vec![], vec![]);
//! # assert_eq!(handle(req).status(), 204);
//! ```
//!
//! An event succeeds when the function exits normally and its response status is below 400;
//! printing nothing at all is fine, and `Response::new(204)` says it plainly. A status of 400
//! or more, a panic or a non-zero exit is a failure: the host retries topic messages and
//! key-value changes with a backoff, and after the last attempt keeps them as dead letters.
//! Delivery is at least once, so a handler should be idempotent: a redelivered topic message
//! has the same [`TopicMessage::id`].
//!
//! [`Request::for_event`] builds the request the host would hand over for an event, to
//! unit-test a handler natively.

use crate::Request;
use crate::request::percent_decode_bytes;
use std::fmt;

/// What invoked the function, from the request's variables (see [`Request::event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An HTTP request (`WISP_TRIGGER` absent or empty), whether the client waits for the
    /// answer or the host runs it asynchronously.
    Http,
    /// A message on a topic the function subscribes to; the body is the message.
    Topic(TopicMessage),
    /// A tick of one of the function's timers; the body is empty.
    Timer(TimerTick),
    /// A change to a key the function watches; the body is the new value (empty for a delete).
    Kv(KvChange),
    /// A trigger this SDK does not know (a newer host's), by its `WISP_TRIGGER` value.
    Other(String),
}

/// A message on a topic (`WISP_TRIGGER=topic`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicMessage {
    /// The topic's name (`WISP_TOPIC`).
    pub topic: String,
    /// The message's id (`WISP_MESSAGE_ID`): an opaque string, the same for every subscriber
    /// and every delivery of one message, so it can make handling idempotent.
    pub id: String,
    /// Which delivery this is (`WISP_ATTEMPT`): 1 the first time, 2 on the first retry, ...
    pub attempt: u32,
}

/// A tick of a timer (`WISP_TRIGGER=timer`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimerTick {
    /// The schedule as the configuration writes it (`WISP_TIMER`), such as `every 10s` or
    /// `*/5 * * * *`: it tells a function's timers apart.
    pub schedule: String,
    /// When the tick was due, in milliseconds since the Unix epoch (`WISP_SCHEDULED_AT`). The
    /// function may run a little later.
    pub scheduled_at_ms: u64,
}

/// A change to a watched key (`WISP_TRIGGER=kv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvChange {
    /// The store's name (`WISP_KV_STORE`).
    pub store: String,
    /// The key, as the function would name it in that store (`WISP_KV_KEY`, decoded when
    /// `WISP_KV_KEY_ENCODING=percent`): [`kv::Store::open(store).get(key)`](crate::kv::Store::get)
    /// reads it.
    pub key: Vec<u8>,
    /// Whether the key was set or deleted (`WISP_KV_OP`).
    pub op: KvOp,
}

impl KvChange {
    /// The key as text, or `None` if it is not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// What happened to a watched key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Created or given a new value; the body is the value.
    Set,
    /// Deleted; the body is empty.
    Delete,
}

impl KvOp {
    /// `"set"` or `"delete"`, as `WISP_KV_OP` says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            KvOp::Set => "set",
            KvOp::Delete => "delete",
        }
    }
}

impl fmt::Display for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Request {
    /// What invoked the function: an HTTP request or an event, read from `WISP_TRIGGER` and the
    /// variables of its trigger (see [`events`](crate::events)).
    ///
    /// It reads the variables through [`Request::var`], so it works on a request built by
    /// [`Request::new`] too. The host always sets every variable; should one be missing or
    /// malformed all the same, the event is still given, with a fallback in that field: an
    /// empty string for a missing name, id, schedule or store; an empty key; attempt 1;
    /// `scheduled_at_ms` 0; [`KvOp::Set`] for any `WISP_KV_OP` but `delete`. A malformed `%`
    /// escape in a percent-encoded key is kept as it is. An empty `WISP_TRIGGER` is
    /// [`Event::Http`], and one this SDK does not know is [`Event::Other`].
    ///
    /// ```
    /// use wisp_sdk::events::{Event, TopicMessage};
    /// let env = [
    ///     ("WISP_TRIGGER", "topic"),
    ///     ("WISP_TOPIC", "orders"),
    ///     ("WISP_MESSAGE_ID", "m-1"),
    ///     ("WISP_ATTEMPT", "2"),
    /// ];
    /// let req = wisp_sdk::Request::new(env, vec![], b"{}".to_vec());
    /// let message = TopicMessage { topic: "orders".into(), id: "m-1".into(), attempt: 2 };
    /// assert_eq!(req.event(), Event::Topic(message));
    /// assert_eq!(wisp_sdk::Request::default().event(), Event::Http);
    /// ```
    pub fn event(&self) -> Event {
        let text = |name| self.var(name).unwrap_or_default().to_string();
        match self.var("WISP_TRIGGER").unwrap_or_default() {
            "" => Event::Http,
            "topic" => Event::Topic(TopicMessage {
                topic: text("WISP_TOPIC"),
                id: text("WISP_MESSAGE_ID"),
                attempt: self
                    .var("WISP_ATTEMPT")
                    .and_then(|a| a.trim().parse().ok())
                    .filter(|&a| a >= 1)
                    .unwrap_or(1),
            }),
            "timer" => Event::Timer(TimerTick {
                schedule: text("WISP_TIMER"),
                scheduled_at_ms: self
                    .var("WISP_SCHEDULED_AT")
                    .and_then(|at| at.trim().parse().ok())
                    .unwrap_or(0),
            }),
            "kv" => {
                let key = self.var("WISP_KV_KEY").unwrap_or_default();
                Event::Kv(KvChange {
                    store: text("WISP_KV_STORE"),
                    key: match self.var("WISP_KV_KEY_ENCODING") {
                        Some("percent") => percent_decode_bytes(key, false),
                        _ => key.as_bytes().to_vec(),
                    },
                    op: match self.var("WISP_KV_OP") {
                        Some("delete") => KvOp::Delete,
                        _ => KvOp::Set,
                    },
                })
            }
            other => Event::Other(other.to_string()),
        }
    }

    /// The request the host hands a function for `event`, with `payload` as the body: the
    /// variables that [`Request::event`] reads, plus `REQUEST_METHOD=POST`, `CONTENT_LENGTH`,
    /// `SERVER_PROTOCOL=HTTP/1.1` and empty `SCRIPT_NAME`, `PATH_INFO` and `QUERY_STRING`. A key
    /// that is not UTF-8 or holds a NUL byte is percent-encoded, as the host does. For native
    /// unit tests of event handlers.
    ///
    /// ```
    /// use wisp_sdk::events::{Event, TimerTick};
    /// let tick = Event::Timer(TimerTick { schedule: "every 10s".into(), scheduled_at_ms: 1000 });
    /// let req = wisp_sdk::Request::for_event(&tick, Vec::new());
    /// assert_eq!(req.method(), "POST");
    /// assert_eq!(req.var("WISP_SCHEDULED_AT"), Some("1000"));
    /// assert_eq!(req.event(), tick);
    /// ```
    pub fn for_event(event: &Event, payload: Vec<u8>) -> Request {
        let mut vars = vec![
            ("REQUEST_METHOD", "POST".to_string()),
            ("CONTENT_LENGTH", payload.len().to_string()),
            ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
            ("SCRIPT_NAME", String::new()),
            ("PATH_INFO", String::new()),
            ("QUERY_STRING", String::new()),
        ];
        match event {
            Event::Http => {}
            Event::Topic(message) => vars.extend([
                ("WISP_TRIGGER", "topic".to_string()),
                ("WISP_TOPIC", message.topic.clone()),
                ("WISP_MESSAGE_ID", message.id.clone()),
                ("WISP_ATTEMPT", message.attempt.to_string()),
            ]),
            Event::Timer(tick) => vars.extend([
                ("WISP_TRIGGER", "timer".to_string()),
                ("WISP_TIMER", tick.schedule.clone()),
                ("WISP_SCHEDULED_AT", tick.scheduled_at_ms.to_string()),
            ]),
            Event::Kv(change) => {
                vars.extend([
                    ("WISP_TRIGGER", "kv".to_string()),
                    ("WISP_KV_STORE", change.store.clone()),
                    ("WISP_KV_OP", change.op.as_str().to_string()),
                ]);
                match change.key_str().filter(|key| !key.contains('\0')) {
                    Some(key) => vars.push(("WISP_KV_KEY", key.to_string())),
                    None => vars.extend([
                        ("WISP_KV_KEY", percent_encode_all(&change.key)),
                        ("WISP_KV_KEY_ENCODING", "percent".to_string()),
                    ]),
                }
            }
            Event::Other(trigger) => vars.push(("WISP_TRIGGER", trigger.clone())),
        }
        Request::new(vars, Vec::new(), payload)
    }
}

/// Every byte as `%XX` (uppercase), as the host encodes a key that is not plain text.
fn percent_encode_all(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        out.push('%');
        out.push(HEX[usize::from(byte >> 4)].into());
        out.push(HEX[usize::from(byte & 0xf)].into());
    }
    out
}

#[cfg(test)]
mod tests;
