//! Topics: publish messages that the host delivers to every function subscribed to a topic.
//!
//! [`publish`] puts a message in this invocation's outbox. The host commits the outbox only if
//! the invocation succeeds (exit status 0 and no response status of 400 or more), together with
//! its other writes, and only then delivers each message to the topic's subscribers: a trap, a
//! limit, a non-zero exit or a failure status publishes nothing. So a handler can publish first
//! and fail later without anybody seeing a message about work that did not happen.
//!
//! ```
//! use wisp_sdk::topics::{self, PublishError};
//! use wisp_sdk::Response;
//!
//! fn order_placed(id: &str) -> Response {
//!     let message = format!(r#"{{"id":{}}}"#, wisp_sdk::json_string(id));
//!     match topics::publish("orders", message) {
//!         Ok(()) => Response::json(202, "{}"),
//!         // A subscriber is too far behind: ask the client to come back.
//!         Err(PublishError::QueueFull) => Response::new(503).header("Retry-After", "1"),
//!         Err(e) => Response::text(500, format!("{e}\n")),
//!     }
//! }
//! # assert_eq!(order_placed("7").status(), 202);
//! # assert_eq!(topics::testing::published(), [("orders".to_string(), br#"{"id":"7"}"#.to_vec())]);
//! ```
//!
//! A function may publish only to the topics its configuration lists in `"publish"`; a topic
//! name is 1 to 63 of `a-z`, `0-9` and `-`, starting with a letter or digit. A message is at
//! most [`MAX_MESSAGE_LEN`] bytes, and one invocation publishes at most
//! [`MAX_MESSAGES_PER_INVOCATION`] messages and [`MAX_PAYLOAD_PER_INVOCATION`] bytes in all.
//!
//! On `wasm32` this is the host's `publish` import (see `functions/README.md`, "Host ABI").
//! Everywhere else it is an in-memory fake with the same checks and error codes, one per
//! thread, which records what was published: the module `testing` (native builds only) reads
//! and configures it, so a handler that publishes can be unit-tested natively.

use std::fmt;

/// The largest message, in bytes: 128 KiB.
pub const MAX_MESSAGE_LEN: usize = 128 * 1024;

/// The most messages one invocation may publish.
pub const MAX_MESSAGES_PER_INVOCATION: usize = 256;

/// The most payload bytes, all messages together, that one invocation may publish: 1 MiB.
pub const MAX_PAYLOAD_PER_INVOCATION: usize = 1 << 20;

// The ABI's error codes (shared with the key-value store's: -5 and -9 mean the same there).
const BAD_POINTER: i32 = -5;
const QUEUE_FULL: i32 = -9;
const NOT_ALLOWED: i32 = -10;
const MESSAGE_TOO_LARGE: i32 = -11;
const TOO_MANY_MESSAGES: i32 = -12;

/// Why [`publish`] failed: one variant per error code of the ABI. The message was not
/// published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PublishError {
    /// A pointer or length was outside the module's memory (-5). The SDK passes only valid
    /// ones, so this means a bug in the SDK or the host.
    BadPointer,
    /// The topic is at its depth cap (-9): a subscriber is too far behind. Back off and try
    /// again later, or fail the request (a 503 says "try later" to an HTTP client).
    QueueFull,
    /// The topic is not in the function's `"publish"` configuration, or is not a valid topic
    /// name (-10).
    NotAllowed,
    /// The message is longer than [`MAX_MESSAGE_LEN`] bytes (-11).
    MessageTooLarge,
    /// This invocation already published [`MAX_MESSAGES_PER_INVOCATION`] messages, or this
    /// one would take it past [`MAX_PAYLOAD_PER_INVOCATION`] bytes (-12).
    TooManyMessages,
    /// The host answered something this SDK does not know.
    Unexpected(i32),
}

impl PublishError {
    /// The error for an ABI return value: the variant of a known code,
    /// [`PublishError::Unexpected`] for any other value.
    ///
    /// ```
    /// use wisp_sdk::topics::PublishError;
    /// assert_eq!(PublishError::from_code(-10), PublishError::NotAllowed);
    /// assert_eq!(PublishError::from_code(-99), PublishError::Unexpected(-99));
    /// ```
    pub fn from_code(code: i32) -> PublishError {
        match code {
            BAD_POINTER => PublishError::BadPointer,
            QUEUE_FULL => PublishError::QueueFull,
            NOT_ALLOWED => PublishError::NotAllowed,
            MESSAGE_TOO_LARGE => PublishError::MessageTooLarge,
            TOO_MANY_MESSAGES => PublishError::TooManyMessages,
            other => PublishError::Unexpected(other),
        }
    }

    /// The ABI's code for this error; for [`PublishError::Unexpected`], the value the host
    /// returned.
    pub fn code(&self) -> i32 {
        match *self {
            PublishError::BadPointer => BAD_POINTER,
            PublishError::QueueFull => QUEUE_FULL,
            PublishError::NotAllowed => NOT_ALLOWED,
            PublishError::MessageTooLarge => MESSAGE_TOO_LARGE,
            PublishError::TooManyMessages => TOO_MANY_MESSAGES,
            PublishError::Unexpected(code) => code,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::BadPointer => {
                f.write_str("a pointer or length was outside the module's memory")
            }
            PublishError::QueueFull => {
                f.write_str("the topic's queue is full: a subscriber is too far behind")
            }
            PublishError::NotAllowed => f.write_str(
                "the topic is not in this function's `publish` configuration, or is not a \
                 valid topic name",
            ),
            PublishError::MessageTooLarge => write!(
                f,
                "message too large: a message is at most {MAX_MESSAGE_LEN} bytes"
            ),
            PublishError::TooManyMessages => write!(
                f,
                "too many messages: an invocation publishes at most \
                 {MAX_MESSAGES_PER_INVOCATION} messages and {MAX_PAYLOAD_PER_INVOCATION} bytes"
            ),
            PublishError::Unexpected(code) => write!(f, "unexpected answer {code} from the host"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Publishes `payload` on `topic`: it goes out to every subscriber of the topic if, and only
/// if, this invocation succeeds.
///
/// `Ok` means the message is in this invocation's outbox; it is not delivered yet, and will not
/// be if the invocation fails. Messages of one invocation reach a subscriber in the order they
/// were published. Each call costs the function some fuel.
pub fn publish(topic: &str, payload: impl AsRef<[u8]>) -> Result<(), PublishError> {
    match host::publish(topic.as_bytes(), payload.as_ref()) {
        0 => Ok(()),
        ret => Err(PublishError::from_code(ret)),
    }
}

/// The host's `publish` import, behind a safe function over slices.
#[cfg(target_arch = "wasm32")]
#[path = "host_wasm.rs"]
mod host;

/// The in-memory fake that stands in for the host off wasm: the same function as the wasm
/// `host` module, with the host's checks and error codes.
#[cfg(not(target_arch = "wasm32"))]
#[path = "host_native.rs"]
mod host;

/// Reads and controls the outbox that native builds use in place of the host's (not on wasm).
///
/// Its state is per thread, and each `#[test]` runs on a thread of its own, so tests do not see
/// each other's messages. A thread starts with an empty outbox, every topic allowed and no queue
/// full. The outbox stands for one invocation: its limits count every message since the last
/// [`reset`](testing::reset), and nothing is ever delivered.
///
/// ```
/// use wisp_sdk::topics::{publish, testing, PublishError};
///
/// publish("orders", "first").unwrap();
/// assert_eq!(testing::published(), [("orders".to_string(), b"first".to_vec())]);
///
/// testing::allow(&["orders"]);
/// assert_eq!(publish("audit", "x"), Err(PublishError::NotAllowed));
/// testing::queue_full(true);
/// assert_eq!(publish("orders", "second"), Err(PublishError::QueueFull));
///
/// testing::reset();
/// assert!(testing::published().is_empty());
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use super::host;

    /// Empties the outbox, allows every topic again and un-fills the queues.
    pub fn reset() {
        host::with(|fake| *fake = host::Fake::default());
    }

    /// Every message published since the last [`reset`], as (topic, payload), in order.
    pub fn published() -> Vec<(String, Vec<u8>)> {
        host::with(|fake| fake.published.clone())
    }

    /// Allows exactly the topics named `topics`, as a `"publish"` configuration would (by
    /// default every valid topic name is allowed). Keeps what was published.
    pub fn allow(topics: &[&str]) {
        host::with(|fake| fake.allowed = Some(topics.iter().map(|t| t.to_string()).collect()));
    }

    /// While `full` is true, every publish that passes its other checks fails with
    /// [`PublishError::QueueFull`](super::PublishError::QueueFull), as when a subscriber of
    /// the topic is too far behind.
    pub fn queue_full(full: bool) {
        host::with(|fake| fake.queue_full = full);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
