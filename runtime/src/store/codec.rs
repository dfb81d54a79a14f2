//! The stored form of queue entries, dead letters and call results: length-prefixed fields,
//! little-endian integers, a version byte first so that a later format can read this one.
//!
//! Payloads are bytes (up to a message's cap) and keys may be any bytes, so a text format
//! would need escaping; this stays exact and small.

use super::queues::{Body, CallResult, DeadLetter, Entry, Finished};

const VERSION: u8 = 1;

/// Where the fields that change on a retry sit in an encoded entry: after the version byte,
/// `attempts` (u32) then `not_before` (u64). [`set_retry`] rewrites them in place.
const ATTEMPTS_AT: usize = 1;
const NOT_BEFORE_AT: usize = ATTEMPTS_AT + 4;

#[derive(Default)]
struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn strings(&mut self, list: &[String]) {
        self.u32(list.len() as u32);
        list.iter().for_each(|s| self.bytes(s.as_bytes()));
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.u32()? as usize;
        // Each string takes at least its 4-byte length: a corrupt count cannot allocate more
        // than the input could hold.
        let mut list = Vec::with_capacity(n.min(self.0.len() / 4));
        for _ in 0..n {
            list.push(self.string()?);
        }
        Some(list)
    }
}

/// An entry's stored value (its sequence number is in the key).
pub fn entry(e: &Entry) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(64 + e.payload.len()));
    write_head(&mut out, e);
    out.bytes(&e.payload);
    out.0
}

/// Everything of an entry but its payload.
fn write_head(out: &mut Out, e: &Entry) {
    out.u8(VERSION);
    out.u32(e.attempts);
    out.u64(e.not_before);
    out.u64(e.pushed_at);
    out.bytes(e.id.as_bytes());
    match &e.body {
        Body::Message => out.u8(0),
        Body::Change { key, deleted } => {
            out.u8(1);
            out.bytes(key);
            out.u8(u8::from(*deleted));
        }
        Body::Call { args, env } => {
            out.u8(2);
            out.strings(args);
            out.strings(env);
        }
    }
}

/// An entry's stored value without its payload, which comes last: the payload's length (u32,
/// little-endian) and its bytes, which whoever has them adds (a script that computes the new
/// value of a key). `e.payload` is left out.
pub fn entry_head(e: &Entry) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(64));
    write_head(&mut out, e);
    out.0
}

fn read_entry(input: &mut In, seq: u64) -> Option<Entry> {
    if input.u8()? != VERSION {
        return None;
    }
    let attempts = input.u32()?;
    let not_before = input.u64()?;
    let pushed_at = input.u64()?;
    let id = input.string()?;
    let body = match input.u8()? {
        0 => Body::Message,
        1 => Body::Change {
            key: input.bytes()?.to_vec(),
            deleted: input.u8()? != 0,
        },
        2 => Body::Call {
            args: input.strings()?,
            env: input.strings()?,
        },
        _ => return None,
    };
    let payload = input.bytes()?.to_vec();
    Some(Entry {
        seq,
        id,
        attempts,
        not_before,
        pushed_at,
        body,
        payload,
    })
}

pub fn decode_entry(bytes: &[u8], seq: u64) -> Option<Entry> {
    read_entry(&mut In(bytes), seq)
}

/// Rewrites the retry fields of an encoded entry in place.
pub fn set_retry(encoded: &mut [u8], attempts: u32, not_before: u64) {
    encoded[ATTEMPTS_AT..NOT_BEFORE_AT].copy_from_slice(&attempts.to_le_bytes());
    encoded[NOT_BEFORE_AT..NOT_BEFORE_AT + 8].copy_from_slice(&not_before.to_le_bytes());
}

/// A dead letter's stored value: the entry as it was, why it died, and when.
pub fn dead_letter(d: &DeadLetter) -> Vec<u8> {
    let mut out = Out(entry(&d.entry));
    out.bytes(d.error.as_bytes());
    out.u64(d.dead_at);
    out.0
}

pub fn decode_dead_letter(bytes: &[u8], seq: u64) -> Option<DeadLetter> {
    let mut input = In(bytes);
    let entry = read_entry(&mut input, seq)?;
    let error = input.string()?;
    let dead_at = input.u64()?;
    Some(DeadLetter {
        entry,
        error,
        dead_at,
    })
}

pub fn call_result(r: &CallResult) -> Vec<u8> {
    let mut out = Out::default();
    out.u8(VERSION);
    out.bytes(r.function.as_bytes());
    out.u64(r.accepted_at);
    match &r.done {
        None => out.u8(0),
        Some(done) => {
            out.u8(1);
            out.u64(done.at);
            out.u16(done.status);
            out.u32(done.headers.len() as u32);
            for (name, value) in &done.headers {
                out.bytes(name.as_bytes());
                out.bytes(value.as_bytes());
            }
            out.bytes(&done.body);
        }
    }
    out.0
}

pub fn decode_call_result(bytes: &[u8]) -> Option<CallResult> {
    let mut input = In(bytes);
    if input.u8()? != VERSION {
        return None;
    }
    let function = input.string()?;
    let accepted_at = input.u64()?;
    let done = match input.u8()? {
        0 => None,
        _ => {
            let at = input.u64()?;
            let status = input.u16()?;
            let n = input.u32()? as usize;
            let mut headers = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                headers.push((input.string()?, input.string()?));
            }
            let body = input.bytes()?.to_vec();
            Some(Finished {
                at,
                status,
                headers,
                body,
            })
        }
    };
    Some(CallResult {
        function,
        accepted_at,
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(body: Body) -> Entry {
        Entry {
            seq: 7,
            id: "abc".into(),
            attempts: 2,
            not_before: 1_700_000_000_123,
            pushed_at: 1_700_000_000_000,
            body,
            payload: vec![0, 1, 2, 255],
        }
    }

    #[test]
    fn entries_round_trip() {
        for body in [
            Body::Message,
            Body::Change {
                key: b"order/\0\xff".to_vec(),
                deleted: true,
            },
            Body::Call {
                args: vec!["/x".into(), "a=b".into()],
                env: vec!["REQUEST_METHOD=POST".into()],
            },
        ] {
            let e = sample(body);
            let mut bytes = entry(&e);
            assert_eq!(decode_entry(&bytes, 7), Some(e.clone()));
            let mut head = entry_head(&e);
            head.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
            head.extend_from_slice(&e.payload);
            assert_eq!(head, bytes);
            set_retry(&mut bytes, 3, 42);
            let retried = decode_entry(&bytes, 7).unwrap();
            assert_eq!((retried.attempts, retried.not_before), (3, 42));
            let dead = DeadLetter {
                entry: e,
                error: "exited with status 1".into(),
                dead_at: 99,
            };
            assert_eq!(decode_dead_letter(&dead_letter(&dead), 7), Some(dead));
        }
    }

    #[test]
    fn results_round_trip_and_garbage_is_refused() {
        let mut r = CallResult {
            function: "f".into(),
            accepted_at: 5,
            done: None,
        };
        assert_eq!(decode_call_result(&call_result(&r)), Some(r.clone()));
        r.done = Some(Finished {
            at: 9,
            status: 201,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"made".to_vec(),
        });
        let bytes = call_result(&r);
        assert_eq!(decode_call_result(&bytes), Some(r));
        for cut in 0..bytes.len() {
            assert_eq!(decode_call_result(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode_entry(&[9, 9, 9], 1), None);
    }
}
