//! `wisp.publish`: a guest hands a message for a topic to its invocation's outbox.
//!
//! Nothing leaves the outbox during the run. The server commits the messages, with the
//! invocation's other writes, only if the invocation succeeds ([`Outcome::published`]); a trap,
//! a limit or a failure status drops them. Each message holds what the server's [`Admit`]
//! gave when it admitted it (room reserved in the topic's queues), so a storm of publishes
//! meets the topic's depth cap during the run, as an error code, instead of growing memory.
//!
//! The ABI (documented for guest authors in functions/README.md):
//! `publish(topic_ptr, topic_len, payload_ptr, payload_len) -> i32`, 0 or an error code.
//!
//! [`Outcome::published`]: super::Outcome::published

use std::fmt;
use std::sync::Arc;

use wasmi::Caller;
use wasmi::errors::LinkerError;

use super::host::{HostState, Imports, guest_range};
use super::kv::{MODULE_NAME, OP_FUEL, QUEUE_FULL};

const BAD_POINTER: i32 = -5;
const NOT_ALLOWED: i32 = -10;
const MESSAGE_TOO_LARGE: i32 = -11;
const TOO_MANY_MESSAGES: i32 = -12;

/// Largest message, in bytes: 128 KiB, as Cloudflare Queues allows.
pub const MAX_MESSAGE: usize = 128 << 10;
/// Most messages one invocation may publish.
pub const MAX_MESSAGES: usize = 256;
/// Most bytes of messages one invocation may publish, all together.
pub const MAX_OUTBOX_BYTES: usize = 1 << 20;

/// What the server keeps with an admitted message until it is committed or dropped.
pub type Hold = Box<dyn Send + Sync>;

/// Why a message was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The function may not publish to the topic.
    NotAllowed,
    /// The topic is at its depth cap.
    QueueFull,
}

/// The server's side of publishing: which topics a function may publish to, and whether they
/// have room.
pub trait Admit: Send + Sync {
    fn admit(&self, topic: &str, len: usize) -> Result<Hold, Refused>;
}

/// A message an invocation published.
pub struct Published {
    pub topic: String,
    pub payload: Vec<u8>,
    pub hold: Hold,
}

impl fmt::Debug for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Published")
            .field("topic", &self.topic)
            .field("len", &self.payload.len())
            .finish()
    }
}

pub(crate) fn provides(name: &str) -> bool {
    name == "publish"
}

/// What a topic name may be: the same rule as function names, so it is safe in URLs.
pub fn valid_topic(topic: &[u8]) -> bool {
    std::str::from_utf8(topic).is_ok_and(crate::config::valid_name)
}

fn publish(caller: &mut Caller<'_, HostState>, topic: (i32, i32), payload: (i32, i32)) -> i32 {
    let fuel = caller.get_fuel().unwrap_or(0);
    let _ = caller.set_fuel(fuel.saturating_sub(OP_FUEL));
    let Some(memory) = caller.data().memory else {
        return BAD_POINTER;
    };
    let (mem, state) = memory.data_and_store_mut(caller);
    let range = |(ptr, len): (i32, i32)| guest_range(mem.len(), ptr, len as u32 as usize);
    let (Some(topic), Some(payload)) = (range(topic), range(payload)) else {
        return BAD_POINTER;
    };
    let (topic, payload) = (&mem[topic], &mem[payload]);
    let Some(topics) = state.topics.clone() else {
        return NOT_ALLOWED;
    };
    if !valid_topic(topic) {
        return NOT_ALLOWED;
    }
    if payload.len() > MAX_MESSAGE {
        return MESSAGE_TOO_LARGE;
    }
    if state.published.len() >= MAX_MESSAGES
        || state.published_bytes + payload.len() > MAX_OUTBOX_BYTES
    {
        return TOO_MANY_MESSAGES;
    }
    let topic = String::from_utf8_lossy(topic).into_owned();
    match topics.admit(&topic, payload.len()) {
        Ok(hold) => {
            state.published_bytes += payload.len();
            state.published.push(Published {
                topic,
                payload: payload.to_vec(),
                hold,
            });
            0
        }
        Err(Refused::NotAllowed) => NOT_ALLOWED,
        Err(Refused::QueueFull) => QUEUE_FULL,
    }
}

pub(crate) fn add_to_linker(linker: &mut Imports) -> Result<(), LinkerError> {
    linker.func_wrap(
        MODULE_NAME,
        "publish",
        |mut c: Caller<'_, HostState>, tp: i32, tl: i32, pp: i32, pl: i32| {
            publish(&mut c, (tp, tl), (pp, pl))
        },
    )
}

/// Topics that admit everything, for `wisp run`: nothing is committed there anyway.
pub struct AnyTopic;

impl Admit for AnyTopic {
    fn admit(&self, _topic: &str, _len: usize) -> Result<Hold, Refused> {
        Ok(Box::new(()))
    }
}

/// A shared [`AnyTopic`].
pub fn any_topic() -> Arc<dyn Admit> {
    Arc::new(AnyTopic)
}
