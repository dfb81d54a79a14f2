//! The store's errors: the ABI's codes, and [`KvError`], one variant per code.

use std::fmt;

use super::{MAX_KEY_LEN, MAX_VALUE_LEN};

// The ABI's error codes.
pub(super) const NOT_FOUND: i32 = -1;
pub(super) const NO_SUCH_STORE: i32 = -2;
pub(super) const INVALID_KEY: i32 = -3;
pub(super) const VALUE_TOO_LARGE: i32 = -4;
pub(super) const BAD_POINTER: i32 = -5;
pub(super) const NOT_A_NUMBER: i32 = -6;
pub(super) const BUFFER_TOO_SMALL: i32 = -7;
pub(super) const STORE_FAILED: i32 = -8;
pub(super) const QUEUE_FULL: i32 = -9;
// -10 to -12 are `publish`'s.
pub(super) const STORE_UNAVAILABLE: i32 = -13;

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
    /// A function that watches this key (its `"watch"` configuration) has too many change
    /// events waiting, so the write did not happen (-9). Only writes fail this way: back off
    /// and try again later, or fail the request (a 503 says "try later" to an HTTP client).
    QueueFull,
    /// The store is shared by a fleet of devices and cannot be reached now (the device lost
    /// its Redis) (-13). Reads and writes fail this way; a write may or may not have happened,
    /// as when a network call times out. Try again later, or fail the request with a 503.
    Unavailable,
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
            QUEUE_FULL => KvError::QueueFull,
            STORE_UNAVAILABLE => KvError::Unavailable,
            other => KvError::Unexpected(other),
        }
    }

    /// The ABI's code for this error (`-1` to `-9`, `-13`); for [`KvError::Unexpected`], the
    /// value the host returned.
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
            KvError::QueueFull => QUEUE_FULL,
            KvError::Unavailable => STORE_UNAVAILABLE,
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
            KvError::QueueFull => f.write_str(
                "a function watching this key has too many change events waiting; the write \
                 did not happen",
            ),
            KvError::Unavailable => f.write_str(
                "the shared store cannot be reached now; a write may or may not have happened",
            ),
            KvError::Unexpected(code) => write!(f, "unexpected answer {code} from the host"),
        }
    }
}

impl std::error::Error for KvError {}
