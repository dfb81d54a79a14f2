//! Where a fleet's data lives in Redis, and the byte ranges that listing by prefix reads.
//!
//! Under `wisp:{FLEET}:`, the key-value data:
//!
//! - `kv:KEY`: the value of `KEY`; `kv-index`: a sorted set of every key (see [`Keys`]).
//!
//! The queues of events, each named by its [`QueueKey::encode`] form `NAME` (`payment
//! topic:orders`):
//!
//! - `queue:NAME`: a stream of its entries, each with the ID `0-SEQ` (`SEQ` from `seq`, one
//!   counter for the fleet, so a queue's entries sort in push order) and one field `e`, the
//!   entry's stored form (`store/codec.rs`); a consumer group named after the queue's function,
//!   whose consumers are the devices, holds what each device is delivering;
//! - `tries:NAME`: a hash of `SEQ` to `ATTEMPTS NOT_BEFORE` for each entry that failed a
//!   delivery (`NOT_BEFORE`, Redis's clock in ms, is 0 once the entry is claimed again);
//! - `dead:NAME` (`SEQ` to the entry's stored form), `dead-info:NAME` (`SEQ` to
//!   `ATTEMPTS DEAD_AT ERROR_LENGTH ERROR`) and `dead-order:NAME` (a sorted set of `SEQ`): the
//!   dead letters;
//! - `queues`: a set of every `NAME` that may hold anything.
//!
//! The triggers' records: `results` (call id to its stored result) and `results-by-time` (a
//! sorted set of the done ones by when they finished); `timers` (a hash of a timer's name to
//! the last tick that ran) and `tick:TIMER`, the lease of the device running a tick.
//!
//! The scripts build the queue's keys from the prefix and `NAME` (`queue_scripts.rs`): every
//! key shares the fleet's hash tag, so a script's keys are always in one slot.
//!
//! [`QueueKey::encode`]: crate::store::queues::QueueKey::encode

/// The names of one fleet's keys: everything under `wisp:{FLEET}:`.
///
/// The braces are literal: they make the fleet's name a Redis Cluster hash tag, so that every
/// key of a fleet is in one slot, as a script that touches a value and the index needs.
pub(super) struct Keys {
    /// `wisp:{FLEET}:`
    prefix: Vec<u8>,
    /// `wisp:{FLEET}:kv:`, followed by the key.
    value: Vec<u8>,
    /// `wisp:{FLEET}:kv-index`: a sorted set of every key, all with score 0, so that Redis
    /// orders them by their bytes.
    index: Vec<u8>,
}

impl Keys {
    pub(super) fn new(fleet: &str) -> Keys {
        Keys {
            prefix: format!("wisp:{{{fleet}}}:").into_bytes(),
            value: format!("wisp:{{{fleet}}}:kv:").into_bytes(),
            index: format!("wisp:{{{fleet}}}:kv-index").into_bytes(),
        }
    }

    /// `wisp:{FLEET}:`, which the queues' scripts build their keys on.
    pub(super) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The Redis key that holds the value of `key`.
    pub(super) fn value(&self, key: &[u8]) -> Vec<u8> {
        [self.value.as_slice(), key].concat()
    }

    pub(super) fn index(&self) -> &[u8] {
        &self.index
    }
}

/// The `ZRANGE ... BYLEX` bounds of the keys that start with `prefix`, strictly after `after`:
/// from `[prefix` (or `(after`, when `after` sorts at or past `prefix`) to the first string
/// past every key with the prefix, excluded, or `+` when there is none.
pub(super) fn lex_range(prefix: &[u8], after: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    let start = match after {
        Some(after) if after >= prefix => [b"(", after].concat(),
        _ => [b"[", prefix].concat(),
    };
    let end = match successor(prefix) {
        Some(end) => [b"(", end.as_slice()].concat(),
        None => b"+".to_vec(),
    };
    (start, end)
}

/// The least string greater than every string that starts with `prefix`: drop trailing 0xff
/// bytes, then add one to the last. `None` when there is no such string (`prefix` is empty or
/// all 0xff).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_under_the_fleet() {
        let keys = Keys::new("shop");
        assert_eq!(keys.value(b"a\0b"), b"wisp:{shop}:kv:a\0b");
        assert_eq!(keys.index(), b"wisp:{shop}:kv-index");
    }

    #[test]
    fn a_prefix_ends_before_its_successor() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff"), None);
        assert_eq!(successor(b""), None);
        assert_eq!(lex_range(b"k", None), (b"[k".to_vec(), b"(l".to_vec()));
        assert_eq!(lex_range(b"", None), (b"[".to_vec(), b"+".to_vec()));
        // `after` counts only at or past the prefix.
        assert_eq!(lex_range(b"k", Some(b"a")).0, b"[k");
        assert_eq!(lex_range(b"k", Some(b"k")).0, b"(k");
        assert_eq!(lex_range(b"k", Some(b"k1")).0, b"(k1");
    }
}
