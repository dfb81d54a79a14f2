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
