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
//! `functions/README.md`, "Key-value store ABI"). Everywhere else (native builds and their unit
//! tests) it is an in-memory fake with the same semantics and error codes, one per thread, which
//! the module `testing` (native builds only) can reset and configure: a handler that uses the
//! store can be unit-tested natively as it is.

use std::borrow::Cow;
use std::fmt;
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

// The ABI's error codes.
const NOT_FOUND: i32 = -1;
const NO_SUCH_STORE: i32 = -2;
const INVALID_KEY: i32 = -3;
const VALUE_TOO_LARGE: i32 = -4;
const BAD_POINTER: i32 = -5;
const NOT_A_NUMBER: i32 = -6;
const BUFFER_TOO_SMALL: i32 = -7;
const STORE_FAILED: i32 = -8;

/// Why a store operation failed: one variant per error code of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KvError {
    /// No such key (-1). [`Store::get`] reports it as `Ok(None)` instead.
    NotFound,
    /// The function's configuration does not grant this store (-2).
    NoSuchStore,
    /// The key is empty or longer than [`MAX_KEY_LEN`] bytes (-3).
    InvalidKey,
    /// The value is longer than [`MAX_VALUE_LEN`] bytes (-4).
    ValueTooLarge,
    /// A pointer or length was outside the module's memory (-5). The SDK passes only valid
    /// ones, so this means a bug in the SDK or the host.
    BadPointer,
    /// An increment of a value that is not a decimal `i64`, or one that would overflow (-6).
    NotANumber,
    /// The listing buffer cannot hold even the next key (-7).
    BufferTooSmall,
    /// The store failed, for example with an I/O error; a write did not happen (-8).
    StoreFailed,
    /// The host answered something this SDK does not know: an unknown error code, or a result
    /// out of its range.
    Unexpected(i32),
}

impl KvError {
    /// The error for an ABI return value: the variant of a known code, [`KvError::Unexpected`]
    /// for any other value.
    ///
    /// ```
    /// use wisp_sdk::kv::KvError;
    /// assert_eq!(KvError::from_code(-3), KvError::InvalidKey);
    /// assert_eq!(KvError::from_code(-99), KvError::Unexpected(-99));
    /// ```
    pub fn from_code(code: i32) -> KvError {
        match code {
            NOT_FOUND => KvError::NotFound,
            NO_SUCH_STORE => KvError::NoSuchStore,
            INVALID_KEY => KvError::InvalidKey,
            VALUE_TOO_LARGE => KvError::ValueTooLarge,
            BAD_POINTER => KvError::BadPointer,
            NOT_A_NUMBER => KvError::NotANumber,
            BUFFER_TOO_SMALL => KvError::BufferTooSmall,
            STORE_FAILED => KvError::StoreFailed,
            other => KvError::Unexpected(other),
        }
    }

    /// The ABI's code for this error (`-1` to `-8`); for [`KvError::Unexpected`], the value the
    /// host returned.
    pub fn code(&self) -> i32 {
        match *self {
            KvError::NotFound => NOT_FOUND,
            KvError::NoSuchStore => NO_SUCH_STORE,
            KvError::InvalidKey => INVALID_KEY,
            KvError::ValueTooLarge => VALUE_TOO_LARGE,
            KvError::BadPointer => BAD_POINTER,
            KvError::NotANumber => NOT_A_NUMBER,
            KvError::BufferTooSmall => BUFFER_TOO_SMALL,
            KvError::StoreFailed => STORE_FAILED,
            KvError::Unexpected(code) => code,
        }
    }
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NotFound => f.write_str("no such key"),
            KvError::NoSuchStore => f.write_str(
                "the store is not granted to this function (see `stores` and `shared_stores` \
                 in its configuration)",
            ),
            KvError::InvalidKey => write!(f, "invalid key: a key is 1 to {MAX_KEY_LEN} bytes"),
            KvError::ValueTooLarge => {
                write!(
                    f,
                    "value too large: a value is at most {MAX_VALUE_LEN} bytes"
                )
            }
            KvError::BadPointer => {
                f.write_str("a pointer or length was outside the module's memory")
            }
            KvError::NotANumber => {
                f.write_str("the value is not a decimal i64, or the result would overflow")
            }
            KvError::BufferTooSmall => f.write_str("the buffer cannot hold the next key"),
            KvError::StoreFailed => f.write_str("the store failed; the write did not happen"),
            KvError::Unexpected(code) => write!(f, "unexpected answer {code} from the host"),
        }
    }
}

impl std::error::Error for KvError {}

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
mod host {
    mod sys {
        // The ABI: every pointer and length is an i32 (wasm32 pointers are), -1 as a length
        // means "none" where the ABI allows it.
        #[link(wasm_import_module = "wisp")]
        unsafe extern "C" {
            pub fn kv_get(
                store_ptr: *const u8,
                store_len: i32,
                key_ptr: *const u8,
                key_len: i32,
                buf_ptr: *mut u8,
                buf_len: i32,
            ) -> i32;
            pub fn kv_set(
                store_ptr: *const u8,
                store_len: i32,
                key_ptr: *const u8,
                key_len: i32,
                value_ptr: *const u8,
                value_len: i32,
            ) -> i32;
            pub fn kv_delete(
                store_ptr: *const u8,
                store_len: i32,
                key_ptr: *const u8,
                key_len: i32,
            ) -> i32;
            pub fn kv_exists(
                store_ptr: *const u8,
                store_len: i32,
                key_ptr: *const u8,
                key_len: i32,
            ) -> i32;
            pub fn kv_increment(
                store_ptr: *const u8,
                store_len: i32,
                key_ptr: *const u8,
                key_len: i32,
                delta: i64,
                result_ptr: *mut u8,
            ) -> i32;
            pub fn kv_compare_and_swap(
                store_ptr: *const u8,
                store_len: i32,
                key_ptr: *const u8,
                key_len: i32,
                expected_ptr: *const u8,
                expected_len: i32,
                new_ptr: *const u8,
                new_len: i32,
            ) -> i32;
            pub fn kv_list(
                store_ptr: *const u8,
                store_len: i32,
                prefix_ptr: *const u8,
                prefix_len: i32,
                after_ptr: *const u8,
                after_len: i32,
                buf_ptr: *mut u8,
                buf_len: i32,
            ) -> i32;
        }
    }

    /// A slice's length as the ABI's i32. Lossless: a slice is at most `isize::MAX` bytes,
    /// which on wasm32 is `i32::MAX`.
    fn len(s: &[u8]) -> i32 {
        s.len() as i32
    }

    /// An optional slice as the ABI passes it: `None` is a length of -1.
    fn optional(s: Option<&[u8]>) -> (*const u8, i32) {
        s.map_or((std::ptr::null(), -1), |s| (s.as_ptr(), len(s)))
    }

    // Every call below passes only (pointer, length) pairs of live slices (or -1 for "none"),
    // which the host reads, or for `&mut` slices writes, within their lengths during the call
    // and keeps no pointer to afterwards. That is the whole of the unsafe surface.

    pub(super) fn get(store: &[u8], key: &[u8], buf: &mut [u8]) -> i32 {
        // SAFETY: store and key are read within their lengths; the host writes at most
        // buf.len() bytes into buf, which this call borrows exclusively.
        unsafe {
            sys::kv_get(
                store.as_ptr(),
                len(store),
                key.as_ptr(),
                len(key),
                buf.as_mut_ptr(),
                len(buf),
            )
        }
    }

    pub(super) fn set(store: &[u8], key: &[u8], value: &[u8]) -> i32 {
        // SAFETY: the host only reads the three slices, within their lengths.
        unsafe {
            sys::kv_set(
                store.as_ptr(),
                len(store),
                key.as_ptr(),
                len(key),
                value.as_ptr(),
                len(value),
            )
        }
    }

    pub(super) fn delete(store: &[u8], key: &[u8]) -> i32 {
        // SAFETY: the host only reads the two slices, within their lengths.
        unsafe { sys::kv_delete(store.as_ptr(), len(store), key.as_ptr(), len(key)) }
    }

    pub(super) fn exists(store: &[u8], key: &[u8]) -> i32 {
        // SAFETY: the host only reads the two slices, within their lengths.
        unsafe { sys::kv_exists(store.as_ptr(), len(store), key.as_ptr(), len(key)) }
    }

    pub(super) fn increment(store: &[u8], key: &[u8], delta: i64, out: &mut [u8; 8]) -> i32 {
        // SAFETY: the host reads the two slices within their lengths and writes 8 bytes at
        // out, which this call borrows exclusively (a byte array: no alignment needed).
        unsafe {
            sys::kv_increment(
                store.as_ptr(),
                len(store),
                key.as_ptr(),
                len(key),
                delta,
                out.as_mut_ptr(),
            )
        }
    }

    pub(super) fn compare_and_swap(
        store: &[u8],
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> i32 {
        let (expected_ptr, expected_len) = optional(expected);
        let (new_ptr, new_len) = optional(new);
        // SAFETY: the host only reads the slices within their lengths, and reads nothing for
        // a length of -1.
        unsafe {
            sys::kv_compare_and_swap(
                store.as_ptr(),
                len(store),
                key.as_ptr(),
                len(key),
                expected_ptr,
                expected_len,
                new_ptr,
                new_len,
            )
        }
    }

    pub(super) fn list(store: &[u8], prefix: &[u8], after: &[u8], buf: &mut [u8]) -> i32 {
        // SAFETY: store, prefix and after are read within their lengths; the host writes at
        // most buf.len() bytes into buf, which this call borrows exclusively.
        unsafe {
            sys::kv_list(
                store.as_ptr(),
                len(store),
                prefix.as_ptr(),
                len(prefix),
                after.as_ptr(),
                len(after),
                buf.as_mut_ptr(),
                len(buf),
            )
        }
    }
}

/// The in-memory fake that stands in for the host off wasm: the same functions as the wasm
/// `host` module, with the host's semantics and error codes.
#[cfg(not(target_arch = "wasm32"))]
mod host {
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
        pub(super) failing: bool,
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
                failing: false,
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

        /// The table of `store` for a write, once every argument has passed its checks.
        fn writable(&mut self, store: &[u8]) -> Result<&mut Table, i32> {
            if self.failing {
                return Err(STORE_FAILED);
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
            let table = fake.table(store)?;
            valid_key(key)?;
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
            let table = fake.table(store)?;
            valid_key(key)?;
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
            let table = fake.table(store)?;
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
}

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
///
/// testing::reset();
/// assert_eq!(Store::open("sessions").get("s1"), Err(KvError::NoSuchStore));
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use super::host;

    /// Empties every store, grants `default` alone again and makes writes succeed again.
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
        host::with(|fake| fake.failing = fail);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn store() -> Store {
        testing::reset();
        Store::default_store()
    }

    fn all_keys(store: &Store, prefix: &str, buffer_size: usize) -> Vec<Vec<u8>> {
        store
            .keys(prefix)
            .buffer_size(buffer_size)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn error_codes_round_trip() {
        for code in -8..=-1 {
            let err = KvError::from_code(code);
            assert!(!matches!(err, KvError::Unexpected(_)), "{code}");
            assert_eq!(err.code(), code);
            assert!(!err.to_string().is_empty());
        }
        assert_eq!(KvError::from_code(-9), KvError::Unexpected(-9));
        assert_eq!(KvError::Unexpected(7).code(), 7);
        assert_eq!(
            KvError::InvalidKey.to_string(),
            "invalid key: a key is 1 to 1024 bytes"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(KvError::NoSuchStore);
        assert!(boxed.to_string().contains("not granted"));
    }

    #[test]
    fn set_get_delete_exists() {
        let s = store();
        assert_eq!(s.get("k").unwrap(), None);
        assert!(!s.exists("k").unwrap());
        s.set("k", "v").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
        assert!(s.exists(b"k").unwrap());
        s.set("k", "").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(Vec::new()));
        assert!(s.exists("k").unwrap());
        assert!(s.delete("k").unwrap());
        assert!(!s.delete("k").unwrap());
        assert_eq!(s.get("k").unwrap(), None);
        // Binary keys and values.
        s.set([0u8, 255], [1u8, 0, 2]).unwrap();
        assert_eq!(s.get([0u8, 255]).unwrap(), Some(vec![1, 0, 2]));
    }

    #[test]
    fn get_retries_with_a_big_enough_buffer() {
        let s = store();
        for len in [0, 1, 255, 256, 257, 4096, MAX_VALUE_LEN] {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            s.set("v", &value).unwrap();
            assert_eq!(
                s.get("v").unwrap().as_deref(),
                Some(value.as_slice()),
                "{len}"
            );
        }
    }

    #[test]
    fn get_follows_a_value_that_grows_between_calls() {
        let s = store();
        s.set("k", vec![1u8; 300]).unwrap();
        let (grow, grow_more) = (Some(vec![2u8; 1000]), Some(vec![3u8; 5000]));
        writes_after_get([("k", grow), ("k", grow_more)]);
        // 300 bytes: too big for the first buffer; then 1000, then 5000, which it gets.
        assert_eq!(s.get("k").unwrap(), Some(vec![3u8; 5000]));

        // Shrinking is fine too: the buffer is cut to the value's length.
        s.set("k", vec![5u8; 300]).unwrap();
        writes_after_get([("k", Some(vec![6u8; 3]))]);
        assert_eq!(s.get("k").unwrap(), Some(vec![6u8; 3]));

        // And so is a value deleted in between.
        s.set("k", vec![7u8; 300]).unwrap();
        writes_after_get([("k", None)]);
        assert_eq!(s.get("k").unwrap(), None);
    }

    fn writes_after_get<const N: usize>(writes: [(&str, Option<Vec<u8>>); N]) {
        host::with(|fake| {
            let writes = writes.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v));
            fake.writes_after_get = writes.collect();
        });
    }

    #[test]
    fn get_into_reports_the_full_length() {
        let s = store();
        s.set("k", "hello world").unwrap();
        let mut buf = [0u8; 5];
        assert_eq!(s.get_into("k", &mut buf).unwrap(), Some(11));
        assert_eq!(&buf, b"hello");
        assert_eq!(s.get_into("k", &mut []).unwrap(), Some(11));
        assert_eq!(s.get_into("nope", &mut buf).unwrap(), None);
    }

    #[test]
    fn keys_and_values_are_capped() {
        let s = store();
        let longest = vec![b'k'; MAX_KEY_LEN];
        s.set(&longest, "ok").unwrap();
        assert_eq!(s.get(&longest).unwrap(), Some(b"ok".to_vec()));
        let too_long = vec![b'k'; MAX_KEY_LEN + 1];
        assert_eq!(s.set(&too_long, "x"), Err(KvError::InvalidKey));
        assert_eq!(s.set("", "x"), Err(KvError::InvalidKey));
        assert_eq!(s.get(""), Err(KvError::InvalidKey));
        assert_eq!(s.get(&too_long), Err(KvError::InvalidKey));
        assert_eq!(s.delete(""), Err(KvError::InvalidKey));
        assert_eq!(s.exists(""), Err(KvError::InvalidKey));
        assert_eq!(s.increment("", 1), Err(KvError::InvalidKey));
        assert_eq!(
            s.compare_and_swap("", None, Some(b"x")),
            Err(KvError::InvalidKey)
        );

        let big = vec![0u8; MAX_VALUE_LEN + 1];
        assert_eq!(s.set("k", &big), Err(KvError::ValueTooLarge));
        assert_eq!(
            s.compare_and_swap("k", None, Some(&big)),
            Err(KvError::ValueTooLarge)
        );
        assert_eq!(s.get("k").unwrap(), None);
    }

    #[test]
    fn stores_must_be_granted_and_are_separate() {
        let s = store();
        let other = Store::open("other");
        assert_eq!(other.get("k"), Err(KvError::NoSuchStore));
        assert_eq!(other.set("k", "v"), Err(KvError::NoSuchStore));
        assert_eq!(other.delete("k"), Err(KvError::NoSuchStore));
        assert_eq!(other.exists("k"), Err(KvError::NoSuchStore));
        assert_eq!(other.increment("k", 1), Err(KvError::NoSuchStore));
        assert_eq!(other.counter("k"), Err(KvError::NoSuchStore));
        assert_eq!(
            other.compare_and_swap("k", None, None),
            Err(KvError::NoSuchStore)
        );
        assert_eq!(other.list_page("", "", 64), Err(KvError::NoSuchStore));
        assert_eq!(
            other.keys("").collect::<Vec<_>>(),
            [Err(KvError::NoSuchStore)]
        );
        // The store is checked before the key.
        assert_eq!(other.set("", "v"), Err(KvError::NoSuchStore));

        testing::grant(&["default", "other"]);
        s.set("k", "in default").unwrap();
        other.set("k", "in other").unwrap();
        assert_eq!(s.get("k").unwrap(), Some(b"in default".to_vec()));
        assert_eq!(other.get("k").unwrap(), Some(b"in other".to_vec()));
        assert_eq!(Store::default(), s);
        assert_eq!(other.name(), "other");
    }

    #[test]
    fn counters() {
        let s = store();
        assert_eq!(s.counter("c").unwrap(), 0);
        assert!(!s.exists("c").unwrap());
        assert_eq!(s.increment("c", 1).unwrap(), 1);
        assert_eq!(s.increment("c", 10).unwrap(), 11);
        assert_eq!(s.increment("c", -20).unwrap(), -9);
        assert_eq!(s.get("c").unwrap(), Some(b"-9".to_vec()));
        assert_eq!(s.counter("c").unwrap(), -9);
        assert_eq!(s.increment("c", 0).unwrap(), -9);

        s.set("c", " 41\n").unwrap();
        assert_eq!(s.counter("c").unwrap(), 41);
        assert_eq!(s.increment("c", 1).unwrap(), 42);

        s.set("text", "forty-two").unwrap();
        assert_eq!(s.increment("text", 1), Err(KvError::NotANumber));
        assert_eq!(s.counter("text"), Err(KvError::NotANumber));
        assert_eq!(s.get("text").unwrap(), Some(b"forty-two".to_vec()));

        s.set("max", i64::MAX.to_string()).unwrap();
        assert_eq!(s.increment("max", 1), Err(KvError::NotANumber));
        assert_eq!(s.counter("max").unwrap(), i64::MAX);
        assert_eq!(s.increment("min", i64::MIN).unwrap(), i64::MIN);
        assert_eq!(s.increment("min", -1), Err(KvError::NotANumber));
    }

    #[test]
    fn compare_and_swap() {
        let s = store();
        // Absent expected: create only if missing.
        assert!(s.compare_and_swap("k", None, Some(b"1")).unwrap());
        assert!(!s.compare_and_swap("k", None, Some(b"2")).unwrap());
        assert_eq!(s.get("k").unwrap(), Some(b"1".to_vec()));
        // Matching value: swap; mismatch: nothing changes.
        assert!(!s.compare_and_swap("k", Some(b"0"), Some(b"2")).unwrap());
        assert!(s.compare_and_swap("k", Some(b"1"), Some(b"2")).unwrap());
        assert_eq!(s.get("k").unwrap(), Some(b"2".to_vec()));
        // The empty value is a value, not absence.
        assert!(s.compare_and_swap("k", Some(b"2"), Some(b"")).unwrap());
        assert!(!s.compare_and_swap("k", None, Some(b"3")).unwrap());
        assert!(s.compare_and_swap("k", Some(b""), None).unwrap());
        assert!(!s.exists("k").unwrap());
        // Deleting a missing key on "must be absent" succeeds and leaves it absent.
        assert!(s.compare_and_swap("k", None, None).unwrap());
        assert!(!s.exists("k").unwrap());
    }

    #[test]
    fn failed_writes_change_nothing() {
        let s = store();
        s.set("k", "v").unwrap();
        testing::fail_writes(true);
        assert_eq!(s.set("k", "w"), Err(KvError::StoreFailed));
        assert_eq!(s.delete("k"), Err(KvError::StoreFailed));
        assert_eq!(s.increment("n", 1), Err(KvError::StoreFailed));
        assert_eq!(
            s.compare_and_swap("k", Some(b"v"), None),
            Err(KvError::StoreFailed)
        );
        // Reads still work, and the checks come first.
        assert_eq!(s.get("k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.set("", "w"), Err(KvError::InvalidKey));
        testing::fail_writes(false);
        assert_eq!(s.get("n").unwrap(), None);
        s.set("k", "w").unwrap();
    }

    #[test]
    fn list_pages_in_byte_order() {
        let s = store();
        for key in ["b", "a:2", "a:10", "a:1", "a", "c"] {
            s.set(key, "x").unwrap();
        }
        let keys = all_keys(&s, "a:", DEFAULT_LIST_BUFFER);
        assert_eq!(keys, [&b"a:1"[..], b"a:10", b"a:2"]);
        let every = all_keys(&s, "", DEFAULT_LIST_BUFFER);
        assert_eq!(every, [&b"a"[..], b"a:1", b"a:10", b"a:2", b"b", b"c"]);
        assert!(all_keys(&s, "z", DEFAULT_LIST_BUFFER).is_empty());

        // One page at a time: 8 bytes hold one 3-byte key (4 + 3) but not two.
        assert_eq!(s.list_page("a:", "", 8).unwrap(), [b"a:1"]);
        assert_eq!(s.list_page("a:", "a:1", 8).unwrap(), [b"a:10"]);
        assert_eq!(s.list_page("a:", "a:10", 8).unwrap(), [b"a:2"]);
        assert_eq!(s.list_page("a:", "a:2", 8).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn every_buffer_size_lists_every_key() {
        let s = store();
        let mut expected: Vec<Vec<u8>> =
            (0..200).map(|i| format!("k{i:03}").into_bytes()).collect();
        expected.push(vec![b'k'; MAX_KEY_LEN]);
        expected.sort();
        for key in &expected {
            s.set(key, "v").unwrap();
        }
        for size in [0, 1, 7, 8, 9, 16, 100, DEFAULT_LIST_BUFFER, 1 << 20] {
            assert_eq!(all_keys(&s, "k", size), expected, "buffer of {size} bytes");
        }
    }

    #[test]
    fn list_page_reports_a_buffer_too_small() {
        let s = store();
        s.set("abcdef", "v").unwrap();
        assert_eq!(s.list_page("", "", 9), Err(KvError::BufferTooSmall));
        assert_eq!(s.list_page("", "", 10).unwrap(), [b"abcdef".to_vec()]);
        assert_eq!(
            s.list_page("", "abcdef", 10).unwrap(),
            Vec::<Vec<u8>>::new()
        );
        // Past the last key there is nothing, whatever the buffer.
        assert_eq!(s.list_page("", "abcdef", 0).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn listing_pages_beyond_the_hosts_page_cap() {
        // The host returns at most 1024 keys a call, even when more would fit: the iterator
        // must go on until an empty page, not stop at a short one.
        let s = store();
        for i in 0..2500 {
            s.set(format!("n{i:05}"), "").unwrap();
        }
        let first = s.list_page("n", "", 1 << 20).unwrap();
        assert_eq!(first.len(), 1024);
        let keys = all_keys(&s, "n", 1 << 20);
        assert_eq!(keys.len(), 2500);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn after_before_the_prefix_starts_at_the_prefix() {
        let s = store();
        for key in ["a", "b1", "b2", "c"] {
            s.set(key, "").unwrap();
        }
        assert_eq!(
            s.list_page("b", "a", 64).unwrap(),
            [b"b1".to_vec(), b"b2".to_vec()]
        );
        assert_eq!(s.list_page("b", "b1", 64).unwrap(), [b"b2".to_vec()]);
        assert_eq!(s.list_page("b", "zz", 64).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn keys_stop_after_an_error() {
        let s = Store::open("ungranted");
        testing::reset();
        let mut keys = s.keys("");
        assert_eq!(keys.next(), Some(Err(KvError::NoSuchStore)));
        assert_eq!(keys.next(), None);
        assert_eq!(keys.next(), None);
    }

    #[test]
    fn decoding_rejects_a_malformed_listing() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&2u32.to_le_bytes());
        buf.extend_from_slice(b"ab");
        buf.extend_from_slice(&5u32.to_le_bytes());
        buf.extend_from_slice(b"abc");
        assert_eq!(decode_keys(&buf, 1).unwrap(), [b"ab".to_vec()]);
        assert_eq!(decode_keys(&buf, 2), Err(KvError::Unexpected(2)));
        assert_eq!(decode_keys(&buf[..3], 1), Err(KvError::Unexpected(1)));
        assert_eq!(decode_keys(&[], 0).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn unexpected_answers_are_errors() {
        assert_eq!(check(5).unwrap(), 5);
        assert_eq!(check(-4), Err(KvError::ValueTooLarge));
        assert_eq!(check_bool(2), Err(KvError::Unexpected(2)));
        assert_eq!(check_bool(-2), Err(KvError::NoSuchStore));
        assert!(check_bool(1).unwrap());
        assert!(!check_bool(0).unwrap());
    }
}
