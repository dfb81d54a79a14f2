//! The key-value store: named stores of byte keys and byte values, kept by the host.
//!
//! A function opens a [`Store`] by name and gets, sets, deletes, counts and lists keys in it.
//! The host keeps every key in the function's own namespace of that store (or in the store's
//! shared namespace, when the function's configuration declares the store shared), so two
//! functions that use the key `hits` do not see each other's. A function may use only the
//! stores its configuration grants: `default` unless it says otherwise.
//!
//! ```
//! use wisp_sdk::kv::{KvError, Store};
//!
//! # fn main() -> Result<(), KvError> {
//! let store = Store::default_store();
//!
//! store.set("greeting", "hello")?;
//! assert_eq!(store.get("greeting")?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(store.get("nothing here")?, None);
//!
//! // Counters are atomic, and stored as decimal text.
//! assert_eq!(store.increment("hits", 1)?, 1);
//! assert_eq!(store.increment("hits", 41)?, 42);
//! assert_eq!(store.get("hits")?.as_deref(), Some(&b"42"[..]));
//! assert_eq!(store.counter("hits")?, 42);
//!
//! // Compare-and-swap: write only if nobody changed the value in between.
//! assert!(store.compare_and_swap("greeting", Some(b"hello"), Some(b"hi"))?);
//! assert!(!store.compare_and_swap("greeting", Some(b"hello"), Some(b"hey"))?);
//! // `None` as the expected value: the key must be absent.
//! assert!(store.compare_and_swap("lock", None, Some(b"mine"))?);
//!
//! // Keys by prefix, in byte order; the iterator pages through the host for you.
//! store.set("user:ada", "1")?;
//! store.set("user:bob", "2")?;
//! let users: Vec<Vec<u8>> = store.keys("user:").collect::<Result<_, _>>()?;
//! assert_eq!(users, [b"user:ada".to_vec(), b"user:bob".to_vec()]);
//!
//! assert!(store.delete("lock")?);
//! assert!(!store.exists("lock")?);
//! # Ok(())
//! # }
//! ```
//!
//! Keys are 1 to [`MAX_KEY_LEN`] bytes and values at most [`MAX_VALUE_LEN`]; the host enforces
//! both ([`KvError::InvalidKey`], [`KvError::ValueTooLarge`]). Every operation is atomic, and a
//! write is durable before the HTTP response that follows it is sent.
//!
//! On `wasm32` the store is the host's, through the imports of the `wisp` module (see
//! `functions/README.md`, "Host ABI"). Everywhere else (native builds and their unit
//! tests) it is an in-memory fake with the same semantics and error codes, one per thread, which
//! the module `testing` (native builds only) can reset and configure: a handler that uses the
//! store can be unit-tested natively as it is.

use std::borrow::Cow;
use std::iter::FusedIterator;

/// The longest key, in bytes. Keys are 1 to `MAX_KEY_LEN` bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The largest value, in bytes: 1 MiB.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// The name of the store a function is granted when its configuration names none.
pub const DEFAULT_STORE: &str = "default";

/// The buffer [`Keys`] asks the host to fill per page unless told otherwise, in bytes.
pub const DEFAULT_LIST_BUFFER: usize = 4096;

/// Bytes of the first buffer [`Store::get`] tries, on the stack; larger values take a second
/// call with a buffer of the right size.
const FIRST_GET_BUFFER: usize = 256;

/// A buffer that holds any single key in the `kv_list` encoding.
const ANY_KEY_BUFFER: usize = 4 + MAX_KEY_LEN;

mod error;

pub use error::KvError;
// The ABI's codes, for this module and the hosts below.
use error::*;

/// A non-negative return value as a count or length, a negative one as its error.
fn check(ret: i32) -> Result<usize, KvError> {
    usize::try_from(ret).map_err(|_| KvError::from_code(ret))
}

/// A return value that is `0` or `1` (or an error).
fn check_bool(ret: i32) -> Result<bool, KvError> {
    match check(ret)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(KvError::Unexpected(ret)),
    }
}

/// Reads a counter the way the host does: missing is 0, otherwise decimal `i64` text
/// (surrounding whitespace allowed).
fn parse_counter(value: Option<&[u8]>) -> Result<i64, KvError> {
    match value {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(KvError::NotANumber),
    }
}

/// Decodes the first `count` keys of a `kv_list` buffer: each a `u32` little-endian length,
/// then that many bytes.
fn decode_keys(buf: &[u8], count: usize) -> Result<Vec<Vec<u8>>, KvError> {
    let malformed = || KvError::Unexpected(i32::try_from(count).unwrap_or(i32::MAX));
    // Each key takes at least 4 bytes: a bogus count cannot make this allocate much.
    let mut keys = Vec::with_capacity(count.min(buf.len() / 4));
    let mut rest = buf;
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
        let len = u32::from_le_bytes(*len) as usize;
        let key = tail.get(..len).ok_or_else(malformed)?;
        keys.push(key.to_vec());
        rest = &tail[len..];
    }
    Ok(keys)
}

/// A key-value store the function's configuration grants, by name.
///
/// Opening one does not call the host: a store that is not granted shows up as
/// [`KvError::NoSuchStore`] on the first operation. A `Store` is only a name, cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Store {
    name: Cow<'static, str>,
}

impl Default for Store {
    /// The store named [`DEFAULT_STORE`].
    fn default() -> Self {
        Store::default_store()
    }
}

impl Store {
    /// The store called `name`, such as `"default"` or `"sessions"`.
    pub fn open(name: impl Into<Cow<'static, str>>) -> Store {
        Store { name: name.into() }
    }

    /// The store called `default`, which every function is granted unless its configuration
    /// lists other stores.
    pub fn default_store() -> Store {
        Store::open(DEFAULT_STORE)
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn name_bytes(&self) -> &[u8] {
        self.name.as_bytes()
    }

    /// The value of `key`, or `None` if there is no such key.
    ///
    /// Values up to 256 bytes take one call to the host; a larger one takes a second call with
    /// a buffer of its size (and another, should the value have grown in between).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.as_ref();
        let mut first = [0u8; FIRST_GET_BUFFER];
        let Some(len) = self.get_into(key, &mut first)? else {
            return Ok(None);
        };
        if len <= first.len() {
            return Ok(Some(first[..len].to_vec()));
        }
        let mut buf = vec![0u8; len];
        loop {
            match self.get_into(key, &mut buf)? {
                None => return Ok(None),
                Some(n) if n <= buf.len() => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                // Another instance made the value longer since the last call.
                Some(n) => buf.resize(n, 0),
            }
        }
    }

    /// Copies the value of `key` into `buf` and returns its full length, or `None` if there is
    /// no such key.
    ///
    /// Only `min(length, buf.len())` bytes are copied: when the length is larger than `buf`,
    /// call again with a buffer at least that long. [`Store::get`] does this for you.
    pub fn get_into(
        &self,
        key: impl AsRef<[u8]>,
        buf: &mut [u8],
    ) -> Result<Option<usize>, KvError> {
        match host::get(self.name_bytes(), key.as_ref(), buf) {
            NOT_FOUND => Ok(None),
            ret => check(ret).map(Some),
        }
    }

    /// Sets `key` to `value`, creating the key or replacing its value.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        match host::set(self.name_bytes(), key.as_ref(), value.as_ref()) {
            0 => Ok(()),
            ret => Err(KvError::from_code(ret)),
        }
    }

    /// Deletes `key`; `true` if it existed.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, KvError> {
        check_bool(host::delete(self.name_bytes(), key.as_ref()))
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool, KvError> {
        check_bool(host::exists(self.name_bytes(), key.as_ref()))
    }

    /// Atomically adds `delta` (which may be negative) to the counter at `key` and returns the
    /// new count. A missing key counts from 0.
    ///
    /// Counters are stored as decimal text, so [`Store::get`] of one returns, say, `b"42"`.
    /// Fails with [`KvError::NotANumber`] if the value is not a decimal `i64` or the sum would
    /// overflow; the value is then left as it was.
    pub fn increment(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64, KvError> {
        let mut out = [0u8; 8];
        match host::increment(self.name_bytes(), key.as_ref(), delta, &mut out) {
            0 => Ok(i64::from_le_bytes(out)),
            ret => Err(KvError::from_code(ret)),
        }
    }

    /// The current count of the counter at `key`, without changing it: 0 if the key is missing,
    /// [`KvError::NotANumber`] if its value is not a decimal `i64`.
    ///
    /// Unlike `increment(key, 0)`, this only reads: it never creates the key.
    pub fn counter(&self, key: impl AsRef<[u8]>) -> Result<i64, KvError> {
        parse_counter(self.get(key)?.as_deref())
    }

    /// Atomically sets `key` to `new` if its current value is `expected`; `true` if it did,
    /// `false` (and nothing changed) if the value was something else.
    ///
    /// `expected: None` means the key must be absent (so this creates it only if nobody else
    /// has); `new: None` deletes the key instead of setting it.
    ///
    /// ```
    /// # use wisp_sdk::kv::Store;
    /// # let store = Store::default_store();
    /// // Take a lock only if it is free, then release it only if we still hold it.
    /// assert!(store.compare_and_swap("lock", None, Some(b"owner-1")).unwrap());
    /// assert!(!store.compare_and_swap("lock", None, Some(b"owner-2")).unwrap());
    /// assert!(store.compare_and_swap("lock", Some(b"owner-1"), None).unwrap());
    /// ```
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, KvError> {
        check_bool(host::compare_and_swap(
            self.name_bytes(),
            key.as_ref(),
            expected,
            new,
        ))
    }

    /// Every key that starts with `prefix` (`""`: every key), in byte order.
    ///
    /// The iterator fetches the keys a page at a time ([`Keys::buffer_size`] bytes each) and
    /// yields each key, or one error and then nothing. Collect it into a
    /// `Result<Vec<Vec<u8>>, KvError>` to get them all:
    ///
    /// ```
    /// # use wisp_sdk::kv::Store;
    /// # let store = Store::default_store();
    /// store.set("a:1", "x").unwrap();
    /// store.set("a:2", "y").unwrap();
    /// store.set("b:1", "z").unwrap();
    /// let keys: Vec<Vec<u8>> = store.keys("a:").collect::<Result<_, _>>().unwrap();
    /// assert_eq!(keys, [b"a:1".to_vec(), b"a:2".to_vec()]);
    /// ```
    ///
    /// Keys written while the iteration goes on may or may not show up; each page is a
    /// consistent view on its own.
    pub fn keys(&self, prefix: impl AsRef<[u8]>) -> Keys<'_> {
        Keys {
            store: self,
            prefix: prefix.as_ref().to_vec(),
            after: Vec::new(),
            page: Vec::new().into_iter(),
            buf: Vec::new(),
            buffer_size: DEFAULT_LIST_BUFFER,
            done: false,
        }
    }

    /// One call to the host's `kv_list`: the keys that start with `prefix`, in byte order,
    /// strictly after `after` (`""`: from the first), as many whole ones as fit in a buffer of
    /// `buffer_size` bytes (each key takes 4 bytes more than its length).
    ///
    /// An empty page means there are no more; the host may also return fewer keys than would
    /// fit. To page, call again with `after` set to the last key returned. Fails with
    /// [`KvError::BufferTooSmall`] if the next key does not fit at all; a buffer of
    /// `4 + MAX_KEY_LEN` bytes always holds one. [`Store::keys`] does all this for you.
    pub fn list_page(
        &self,
        prefix: impl AsRef<[u8]>,
        after: impl AsRef<[u8]>,
        buffer_size: usize,
    ) -> Result<Vec<Vec<u8>>, KvError> {
        let mut buf = vec![0u8; buffer_size];
        self.list_into(prefix.as_ref(), after.as_ref(), &mut buf)
    }

    fn list_into(
        &self,
        prefix: &[u8],
        after: &[u8],
        buf: &mut [u8],
    ) -> Result<Vec<Vec<u8>>, KvError> {
        let count = check(host::list(self.name_bytes(), prefix, after, buf))?;
        decode_keys(buf, count)
    }
}

/// The keys of a store that start with a prefix, from [`Store::keys`].
///
/// Yields `Ok(key)` for each key in byte order; after an error it yields that error once and
/// then ends.
#[derive(Debug)]
pub struct Keys<'a> {
    store: &'a Store,
    prefix: Vec<u8>,
    /// The last key of the last page: the next page starts after it.
    after: Vec<u8>,
    page: std::vec::IntoIter<Vec<u8>>,
    buf: Vec<u8>,
    buffer_size: usize,
    done: bool,
}

impl Keys<'_> {
    /// Sets how many bytes each page's buffer has (default: [`DEFAULT_LIST_BUFFER`]). A buffer
    /// too small for the next key is grown to hold any key, so every size works; bigger pages
    /// mean fewer calls to the host.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self
    }

    fn next_page(&mut self) -> Result<bool, KvError> {
        if self.buf.len() < self.buffer_size {
            self.buf.resize(self.buffer_size, 0);
        }
        loop {
            match self
                .store
                .list_into(&self.prefix, &self.after, &mut self.buf)
            {
                Ok(keys) => {
                    let Some(last) = keys.last() else {
                        return Ok(false);
                    };
                    self.after.clone_from(last);
                    self.page = keys.into_iter();
                    return Ok(true);
                }
                Err(KvError::BufferTooSmall) if self.buf.len() < ANY_KEY_BUFFER => {
                    self.buf.resize(ANY_KEY_BUFFER, 0);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Iterator for Keys<'_> {
    type Item = Result<Vec<u8>, KvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(key) = self.page.next() {
            return Some(Ok(key));
        }
        if self.done {
            return None;
        }
        match self.next_page() {
            Ok(true) => self.page.next().map(Ok),
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for Keys<'_> {}

/// The host's `wisp` imports, behind safe functions over slices.
#[cfg(target_arch = "wasm32")]
#[path = "host_wasm.rs"]
mod host;

/// The in-memory fake that stands in for the host off wasm: the same functions as the wasm
/// `host` module, with the host's semantics and error codes.
#[cfg(not(target_arch = "wasm32"))]
#[path = "host_native.rs"]
mod host;

/// Controls the in-memory store that native builds use in place of the host's (not on wasm).
///
/// Its state is per thread, and each `#[test]` runs on a thread of its own, so tests do not
/// see each other's keys. A thread starts with the store `default` granted and empty.
///
/// ```
/// use wisp_sdk::kv::{testing, KvError, Store};
///
/// testing::grant(&["default", "sessions"]);
/// Store::open("sessions").set("s1", "ada").unwrap();
/// assert_eq!(Store::open("other").get("x"), Err(KvError::NoSuchStore));
///
/// testing::fail_writes(true);
/// assert_eq!(Store::default_store().set("k", "v"), Err(KvError::StoreFailed));
/// testing::queue_full(true);
/// assert_eq!(Store::default_store().set("k", "v"), Err(KvError::QueueFull));
/// testing::unavailable(true);
/// assert_eq!(Store::default_store().get("k"), Err(KvError::Unavailable));
///
/// testing::reset();
/// assert_eq!(Store::open("sessions").get("s1"), Err(KvError::NoSuchStore));
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use super::host;

    /// Empties every store, grants `default` alone again and makes operations succeed again.
    pub fn reset() {
        host::with(|fake| *fake = host::Fake::default());
    }

    /// Grants exactly the stores named `stores` (keeping the keys of every store).
    pub fn grant(stores: &[&str]) {
        host::with(|fake| fake.granted = stores.iter().map(|s| s.as_bytes().to_vec()).collect());
    }

    /// While `fail` is true, every write (set, delete, increment, compare-and-swap) that passes
    /// its checks fails with [`KvError::StoreFailed`](super::KvError::StoreFailed) and changes
    /// nothing, as when the host's store has an I/O error.
    pub fn fail_writes(fail: bool) {
        host::with(|fake| fake.failing = fail.then_some(super::STORE_FAILED));
    }

    /// While `full` is true, every write that passes its checks fails with
    /// [`KvError::QueueFull`](super::KvError::QueueFull) and changes nothing, as when a function
    /// watching the key is too far behind. It replaces [`fail_writes`], and `false` ends both.
    pub fn queue_full(full: bool) {
        host::with(|fake| fake.failing = full.then_some(super::QUEUE_FULL));
    }

    /// While `unavailable` is true, every operation, reads included, that passes its checks
    /// fails with [`KvError::Unavailable`](super::KvError::Unavailable) and changes nothing,
    /// as when the device cannot reach the fleet's shared store.
    pub fn unavailable(unavailable: bool) {
        host::with(|fake| fake.unavailable = unavailable);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
