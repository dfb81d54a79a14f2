//! The queue scripts' replies, read into the store's types: rows, queue names, entries (`{ID,
//! BLOB, TRIES}`) and dead letters (`{SEQ, BLOB, INFO}`). Anything else is an unexpected reply,
//! never a panic: Redis may hold what a later version wrote.

use redis::Value;

use super::{bytes, unexpected};
use crate::store::KvError;
use crate::store::codec;
use crate::store::queues::{DeadLetter, Entry, QueueKey};

/// The rows of a script's reply: an array of arrays of `width` values each.
pub(super) fn rows(value: Value, width: usize) -> Result<Vec<Vec<Value>>, KvError> {
    let Value::Array(rows) = value else {
        return Err(unexpected(&value));
    };
    rows.into_iter()
        .map(|row| match row {
            Value::Array(row) if row.len() == width => Ok(row),
            other => Err(unexpected(&other)),
        })
        .collect()
}

/// A queue's name as Redis gave it back; `None` for one that is not a queue's (left by a
/// later version, say).
pub(super) fn queue_name(value: Value) -> Result<Option<QueueKey>, KvError> {
    let name = bytes(value)?.unwrap_or_default();
    Ok(std::str::from_utf8(&name).ok().and_then(QueueKey::decode))
}

pub(super) fn text(value: Value) -> Result<String, KvError> {
    let bytes = bytes(value)?.unwrap_or_default();
    String::from_utf8(bytes).map_err(|e| KvError::Failed(format!("unexpected reply: {e}")))
}

/// An entry as the scripts give it: `{ID, BLOB, TRIES}`.
fn entry(row: Value) -> Result<Entry, KvError> {
    let [id, blob, tries] = match row {
        Value::Array(row) => {
            <[Value; 3]>::try_from(row).map_err(|row| unexpected(&Value::Array(row)))?
        }
        other => return Err(unexpected(&other)),
    };
    let id = text(id)?;
    let seq = id
        .strip_prefix("0-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| KvError::Failed(format!("a queue entry in Redis has the id {id}")))?;
    let blob = bytes(blob)?.unwrap_or_default();
    let mut entry = codec::decode_entry(&blob, seq)
        .ok_or_else(|| KvError::Failed(format!("the queue entry {id} in Redis is unreadable")))?;
    let tries = text(tries)?;
    if let Some((attempts, not_before)) = tries.split_once(' ') {
        entry.attempts = attempts.parse().unwrap_or(0);
        entry.not_before = not_before.parse().unwrap_or(0);
    }
    Ok(entry)
}

pub(super) fn entries(value: Value) -> Result<Vec<Entry>, KvError> {
    match value {
        Value::Array(list) => list.into_iter().map(entry).collect(),
        // Lua's empty table.
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(&other)),
    }
}

/// A dead letter as [`queue_scripts`] gives it: `{SEQ, BLOB, INFO}`.
pub(super) fn dead_letter(row: Vec<Value>) -> Result<DeadLetter, KvError> {
    let [seq, blob, info] =
        <[Value; 3]>::try_from(row).map_err(|row| unexpected(&Value::Array(row)))?;
    let seq_text = text(seq)?;
    let unreadable = || KvError::Failed(format!("the dead letter {seq_text} is unreadable"));
    let seq: u64 = seq_text.parse().map_err(|_| unreadable())?;
    let entry =
        codec::decode_entry(&bytes(blob)?.unwrap_or_default(), seq).ok_or_else(unreadable)?;
    // `ATTEMPTS DEAD_AT ERROR_LENGTH ERROR`
    let info = bytes(info)?.unwrap_or_default();
    let mut fields = info.splitn(4, |&b| b == b' ');
    let mut number = || -> Option<u64> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    let (attempts, dead_at, _) = (number(), number(), number());
    let error = fields
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    Ok(DeadLetter {
        entry: Entry {
            attempts: attempts.unwrap_or(0) as u32,
            ..entry
        },
        error: error.into_owned(),
        dead_at: dead_at.unwrap_or(0),
    })
}
