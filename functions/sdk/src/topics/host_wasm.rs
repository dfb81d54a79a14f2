mod sys {
    // The ABI: every pointer and length is an i32 (wasm32 pointers are).
    #[link(wasm_import_module = "wisp")]
    unsafe extern "C" {
        pub fn publish(
            topic_ptr: *const u8,
            topic_len: i32,
            payload_ptr: *const u8,
            payload_len: i32,
        ) -> i32;
    }
}

/// A slice's length as the ABI's i32. Lossless: a slice is at most `isize::MAX` bytes,
/// which on wasm32 is `i32::MAX`.
fn len(s: &[u8]) -> i32 {
    s.len() as i32
}

pub(super) fn publish(topic: &[u8], payload: &[u8]) -> i32 {
    // SAFETY: the host only reads the two slices, within their lengths, during the call (it
    // copies the payload into the outbox) and keeps no pointer to them.
    unsafe { sys::publish(topic.as_ptr(), len(topic), payload.as_ptr(), len(payload)) }
}
