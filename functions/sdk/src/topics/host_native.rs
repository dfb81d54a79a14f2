use super::*;
use std::cell::RefCell;

/// What the fake host holds for this thread: the outbox of one invocation and its settings.
#[derive(Debug, Default)]
pub(super) struct Fake {
    /// The `"publish"` configuration; `None` allows every valid topic name.
    pub(super) allowed: Option<Vec<String>>,
    pub(super) published: Vec<(String, Vec<u8>)>,
    pub(super) queue_full: bool,
}

thread_local! {
    static FAKE: RefCell<Fake> = RefCell::new(Fake::default());
}

pub(super) fn with<R>(f: impl FnOnce(&mut Fake) -> R) -> R {
    FAKE.with_borrow_mut(f)
}

/// 1 to 63 of `a-z`, `0-9` and `-`, starting with a letter or digit, as the host checks.
fn valid_topic(topic: &[u8]) -> bool {
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    (1..=63).contains(&topic.len()) && topic[0] != b'-' && topic.iter().all(allowed)
}

/// The host's checks in its order: the topic's name, the message's size, the invocation's
/// totals, then whether the function may publish to the topic and whether its queue has room.
pub(super) fn publish(topic: &[u8], payload: &[u8]) -> i32 {
    with(|fake| {
        if !valid_topic(topic) {
            return NOT_ALLOWED;
        }
        if payload.len() > MAX_MESSAGE_LEN {
            return MESSAGE_TOO_LARGE;
        }
        let total: usize = fake.published.iter().map(|(_, p)| p.len()).sum();
        if fake.published.len() >= MAX_MESSAGES_PER_INVOCATION
            || total + payload.len() > MAX_PAYLOAD_PER_INVOCATION
        {
            return TOO_MANY_MESSAGES;
        }
        // A valid name is ASCII: nothing is lost.
        let topic = String::from_utf8_lossy(topic);
        if let Some(allowed) = &fake.allowed
            && !allowed.iter().any(|t| *t == topic)
        {
            return NOT_ALLOWED;
        }
        if fake.queue_full {
            return QUEUE_FULL;
        }
        fake.published.push((topic.into_owned(), payload.to_vec()));
        0
    })
}
