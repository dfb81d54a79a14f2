use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The most keys the host returns from one `kv_list` call, however big the buffer.
const MOST_KEYS_PER_PAGE: usize = 1024;

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug)]
pub(super) struct Fake {
    pub(super) granted: Vec<Vec<u8>>,
    stores: BTreeMap<Vec<u8>, Table>,
    /// The error code every write that passes its checks fails with, if any.
    pub(super) failing: Option<i32>,
    /// Whether every operation that passes its checks fails with `STORE_UNAVAILABLE`.
    pub(super) unavailable: bool,
    /// Writes to make right after the next `get`s, one each, as another instance would.
    #[cfg(test)]
    /// (`None`: a delete).
    #[cfg(test)]
    pub(super) writes_after_get: std::collections::VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            granted: vec![DEFAULT_STORE.as_bytes().to_vec()],
            stores: BTreeMap::new(),
            failing: None,
            unavailable: false,
            #[cfg(test)]
            writes_after_get: Default::default(),
        }
    }
}

thread_local! {
    static FAKE: RefCell<Fake> = RefCell::new(Fake::default());
}

pub(super) fn with<R>(f: impl FnOnce(&mut Fake) -> R) -> R {
    FAKE.with_borrow_mut(f)
}

fn valid_key(key: &[u8]) -> Result<(), i32> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(INVALID_KEY);
    }
    Ok(())
}

fn valid_value(value: &[u8]) -> Result<(), i32> {
    if value.len() > MAX_VALUE_LEN {
        return Err(VALUE_TOO_LARGE);
    }
    Ok(())
}

impl Fake {
    fn table(&mut self, store: &[u8]) -> Result<&mut Table, i32> {
        if !self.granted.iter().any(|s| s == store) {
            return Err(NO_SUCH_STORE);
        }
        Ok(self.stores.entry(store.to_vec()).or_default())
    }

    /// The table of `store` for a read, once every argument has passed its checks.
    fn readable(&mut self, store: &[u8]) -> Result<&mut Table, i32> {
        if self.unavailable {
            return Err(STORE_UNAVAILABLE);
        }
        self.table(store)
    }

    /// The table of `store` for a write, once every argument has passed its checks.
    fn writable(&mut self, store: &[u8]) -> Result<&mut Table, i32> {
        if self.unavailable {
            return Err(STORE_UNAVAILABLE);
        }
        if let Some(code) = self.failing {
            return Err(code);
        }
        self.table(store)
    }
}

/// Runs `op` on the fake; an `Err` is the error code it returns.
fn run(op: impl FnOnce(&mut Fake) -> Result<i32, i32>) -> i32 {
    with(|fake| op(fake).unwrap_or_else(|code| code))
}

pub(super) fn get(store: &[u8], key: &[u8], buf: &mut [u8]) -> i32 {
    run(|fake| {
        #[cfg(test)]
        let write_after = fake.writes_after_get.pop_front();
        fake.table(store)?;
        valid_key(key)?;
        let table = fake.readable(store)?;
        let value = table.get(key).ok_or(NOT_FOUND);
        let result = value.map(|value| {
            let n = value.len().min(buf.len());
            buf[..n].copy_from_slice(&value[..n]);
            value.len() as i32
        });
        #[cfg(test)]
        match write_after {
            Some((key, Some(value))) => drop(table.insert(key, value)),
            Some((key, None)) => drop(table.remove(&key)),
            None => {}
        }
        result
    })
}

pub(super) fn set(store: &[u8], key: &[u8], value: &[u8]) -> i32 {
    run(|fake| {
        fake.table(store)?;
        valid_key(key)?;
        valid_value(value)?;
        fake.writable(store)?.insert(key.to_vec(), value.to_vec());
        Ok(0)
    })
}

pub(super) fn delete(store: &[u8], key: &[u8]) -> i32 {
    run(|fake| {
        fake.table(store)?;
        valid_key(key)?;
        Ok(fake.writable(store)?.remove(key).is_some().into())
    })
}

pub(super) fn exists(store: &[u8], key: &[u8]) -> i32 {
    run(|fake| {
        fake.table(store)?;
        valid_key(key)?;
        let table = fake.readable(store)?;
        Ok(table.contains_key(key).into())
    })
}

pub(super) fn increment(store: &[u8], key: &[u8], delta: i64, out: &mut [u8; 8]) -> i32 {
    run(|fake| {
        fake.table(store)?;
        valid_key(key)?;
        let table = fake.writable(store)?;
        let current = parse_counter(table.get(key).map(Vec::as_slice));
        let next = current
            .ok()
            .and_then(|n| n.checked_add(delta))
            .ok_or(NOT_A_NUMBER)?;
        table.insert(key.to_vec(), next.to_string().into_bytes());
        *out = next.to_le_bytes();
        Ok(0)
    })
}

pub(super) fn compare_and_swap(
    store: &[u8],
    key: &[u8],
    expected: Option<&[u8]>,
    new: Option<&[u8]>,
) -> i32 {
    run(|fake| {
        fake.table(store)?;
        // The host checks the new value before the key.
        new.map(valid_value).transpose()?;
        valid_key(key)?;
        let table = fake.writable(store)?;
        if table.get(key).map(Vec::as_slice) != expected {
            return Ok(0);
        }
        match new {
            Some(value) => table.insert(key.to_vec(), value.to_vec()),
            None => table.remove(key),
        };
        Ok(1)
    })
}

pub(super) fn list(store: &[u8], prefix: &[u8], after: &[u8], buf: &mut [u8]) -> i32 {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    run(|fake| {
        fake.table(store)?;
        let table = fake.readable(store)?;
        let start = if !after.is_empty() && after >= prefix {
            Excluded(after)
        } else {
            Included(prefix)
        };
        let keys = table
            .range::<[u8], _>((start, Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .take(MOST_KEYS_PER_PAGE);
        let mut at = 0;
        let mut written = 0;
        for key in keys {
            let need = 4 + key.len();
            if at + need > buf.len() {
                if written == 0 {
                    return Err(BUFFER_TOO_SMALL);
                }
                break;
            }
            buf[at..at + 4].copy_from_slice(&(key.len() as u32).to_le_bytes());
            buf[at + 4..at + need].copy_from_slice(key);
            at += need;
            written += 1;
        }
        Ok(written)
    })
}
