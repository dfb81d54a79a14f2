//! The key-value routes, for the runtime's tests of the `wisp` imports.
//!
//! `kv-bad-pointers`, `kv-no-store` and `kv-big` call the raw imports directly (only on wasm32;
//! natively they answer 501) and report the codes the host returned; `kv` does one operation
//! through the SDK and reports its result.

use wisp_sdk::kv::{DEFAULT_LIST_BUFFER, KvError, Store};
use wisp_sdk::{Request, Response};

/// `kv?op=...`: one operation through the SDK, answered 200 in a line-oriented text format
/// (a 400 only for an unknown op):
///
/// | op | parameters | answer |
/// | --- | --- | --- |
/// | `get` | `key` | `ok <value>` or `missing` |
/// | `set` | `key`, `value` (or `size=N`: N bytes of `x`) | `ok` |
/// | `delete` | `key` | `true` or `false` (whether it existed) |
/// | `exists` | `key` | `true` or `false` |
/// | `incr` | `key`, `delta` (default 1) | `count=<new count>` |
/// | `counter` | `key` | `count=<count>` (reads only) |
/// | `cas` | `key`, `expected` (absent: must be absent), `value` (absent: delete) | `true` or `false` |
/// | `list` | `prefix`, `buf` (page bytes, default 4096) | each key on a line of its own |
/// | `page` | `prefix`, `after`, `buf` | one `kv_list` call: its keys, a line each |
///
/// Every op takes `store` (default `default`); a missing `key` is the empty key. An error is
/// `error <code> <message>`, such as `error -3 invalid key: a key is 1 to 1024 bytes`.
pub fn op(req: &Request) -> Response {
    let store = Store::open(req.query("store").unwrap_or_else(|| "default".to_string()));
    let key = req.query("key").unwrap_or_default();
    let value = req.query("value");
    let buf = req.query("buf").and_then(|b| b.parse().ok());
    let result: Result<Vec<u8>, KvError> = match req.query("op").as_deref().unwrap_or("") {
        "get" => store.get(&key).map(|value| match value {
            Some(value) => [b"ok ".as_slice(), &value].concat(),
            None => b"missing".to_vec(),
        }),
        "set" => {
            let value = match req.query("size").and_then(|n| n.parse().ok()) {
                Some(size) => vec![b'x'; size],
                None => value.unwrap_or_default().into_bytes(),
            };
            store.set(&key, value).map(|()| b"ok".to_vec())
        }
        "delete" => store.delete(&key).map(boolean),
        "exists" => store.exists(&key).map(boolean),
        "incr" => {
            let delta = req.query("delta").and_then(|d| d.parse().ok()).unwrap_or(1);
            store.increment(&key, delta).map(count)
        }
        "counter" => store.counter(&key).map(count),
        "cas" => {
            let expected = req.query("expected");
            let new = value.as_deref().map(str::as_bytes);
            store
                .compare_and_swap(&key, expected.as_deref().map(str::as_bytes), new)
                .map(boolean)
        }
        "list" => {
            let prefix = req.query("prefix").unwrap_or_default();
            let keys = store
                .keys(prefix)
                .buffer_size(buf.unwrap_or(DEFAULT_LIST_BUFFER));
            keys.collect::<Result<Vec<_>, _>>().map(lines)
        }
        "page" => {
            let prefix = req.query("prefix").unwrap_or_default();
            let after = req.query("after").unwrap_or_default();
            store
                .list_page(prefix, after, buf.unwrap_or(DEFAULT_LIST_BUFFER))
                .map(lines)
        }
        _ => {
            return Response::text(
                400,
                "op: get, set, delete, exists, incr, counter, cas, list or page\n",
            );
        }
    };
    let body = result.unwrap_or_else(|e| format!("error {} {e}", e.code()).into_bytes());
    Response::new(200).body(body)
}

fn boolean(b: bool) -> Vec<u8> {
    if b {
        b"true".to_vec()
    } else {
        b"false".to_vec()
    }
}

fn count(n: i64) -> Vec<u8> {
    format!("count={n}").into_bytes()
}

fn lines(keys: Vec<Vec<u8>>) -> Vec<u8> {
    keys.into_iter()
        .flat_map(|k| k.into_iter().chain([b'\n']))
        .collect()
}

/// The routes that call the raw imports: `kv-bad-pointers`, `kv-no-store` and `kv-big`.
#[cfg(target_arch = "wasm32")]
pub fn raw(action: &str) -> Response {
    let body = match action {
        "kv-bad-pointers" => raw::bad_pointers(),
        "kv-no-store" => raw::no_store(),
        "kv-big" => raw::big(),
        _ => return Response::not_found(),
    };
    Response::text(200, body)
}

/// Natively there are no raw imports to call.
#[cfg(not(target_arch = "wasm32"))]
pub fn raw(_action: &str) -> Response {
    Response::text(501, "the raw kv routes exist only on wasm32\n")
}

#[cfg(target_arch = "wasm32")]
mod raw {
    use std::fmt::Write as _;

    // The imports exactly as the ABI states them: every pointer and length an i32, so any
    // value can be passed, valid or not.
    #[link(wasm_import_module = "wisp")]
    unsafe extern "C" {
        fn kv_get(sp: i32, sl: i32, kp: i32, kl: i32, bp: i32, bl: i32) -> i32;
        fn kv_set(sp: i32, sl: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> i32;
        fn kv_delete(sp: i32, sl: i32, kp: i32, kl: i32) -> i32;
        fn kv_exists(sp: i32, sl: i32, kp: i32, kl: i32) -> i32;
        fn kv_increment(sp: i32, sl: i32, kp: i32, kl: i32, delta: i64, out: i32) -> i32;
        fn kv_compare_and_swap(
            sp: i32,
            sl: i32,
            kp: i32,
            kl: i32,
            ep: i32,
            el: i32,
            np: i32,
            nl: i32,
        ) -> i32;
        fn kv_list(sp: i32, sl: i32, pp: i32, pl: i32, ap: i32, al: i32, bp: i32, bl: i32) -> i32;
    }

    /// 16 bytes below 4 GiB: past the end of any memory this module has.
    const FAR: i32 = 0xFFFF_FFF0_u32 as i32;
    /// A length of 0xFFFF_FFFF: with any pointer above 0 its end overflows 32 bits.
    const HUGE: i32 = -1;

    /// A slice as the ABI's (pointer, length).
    fn arg(s: &[u8]) -> (i32, i32) {
        (s.as_ptr() as i32, s.len() as i32)
    }

    /// The first byte past the end of linear memory.
    fn memory_end() -> i32 {
        (core::arch::wasm32::memory_size(0) * 65536) as i32
    }

    // SAFETY (for every call below): the invalid (pointer, length) pairs are the point, and
    // the host must refuse them without reading or writing anything (that is what these routes
    // test); the valid pairs are live slices that the host reads, or for `buf` writes, within
    // their lengths, and it keeps no pointer past the call.

    /// One line `name=<code>` per call, each with one bad pointer or length among good ones.
    pub fn bad_pointers() -> String {
        let (sp, sl) = arg(b"default");
        let (kp, kl) = arg(b"bad-pointer-probe");
        let (vp, vl) = arg(b"value");
        let mut buf = [0u8; 64];
        let (bp, bl) = (buf.as_mut_ptr() as i32, buf.len() as i32);
        let end = memory_end();
        // SAFETY: see above.
        let calls: [(&str, i32); 13] = unsafe {
            [
                ("kv_set_key_oob", kv_set(sp, sl, FAR, 64, vp, vl)),
                ("kv_get_buf_oob", kv_get(sp, sl, kp, kl, FAR, 64)),
                ("kv_get_len_overflow", kv_get(sp, sl, kp, kl, 16, HUGE)),
                ("kv_list_buf_oob", kv_list(sp, sl, 0, 0, 0, 0, FAR, 64)),
                ("kv_set_store_oob", kv_set(FAR, 16, kp, kl, vp, vl)),
                ("kv_set_value_oob", kv_set(sp, sl, kp, kl, FAR, 64)),
                ("kv_get_key_len_overflow", kv_get(sp, sl, 16, HUGE, bp, bl)),
                (
                    "kv_get_buf_straddles_end",
                    kv_get(sp, sl, kp, kl, end - 4, 8),
                ),
                ("kv_delete_key_oob", kv_delete(sp, sl, FAR, 64)),
                ("kv_exists_key_oob", kv_exists(sp, sl, FAR, 64)),
                (
                    "kv_increment_result_oob",
                    kv_increment(sp, sl, kp, kl, 1, end - 4),
                ),
                (
                    "kv_cas_new_oob",
                    kv_compare_and_swap(sp, sl, kp, kl, 0, -1, FAR, 64),
                ),
                ("kv_list_after_oob", kv_list(sp, sl, 0, 0, FAR, 64, bp, bl)),
            ]
        };
        let mut text = String::new();
        for (name, code) in calls {
            let _ = writeln!(text, "{name}={code}");
        }
        text
    }

    /// `code=<code>` of a well-formed `kv_set` on the store `nope`.
    pub fn no_store() -> String {
        let (sp, sl) = arg(b"nope");
        let (kp, kl) = arg(b"k");
        let (vp, vl) = arg(b"v");
        // SAFETY: see above.
        let code = unsafe { kv_set(sp, sl, kp, kl, vp, vl) };
        format!("code={code}\n")
    }

    /// `value=<code>` of a `kv_set` of 1 MiB + 1 bytes, then `key=<code>` of one with a
    /// 1025-byte key, both on the store `default`.
    pub fn big() -> String {
        let (sp, sl) = arg(b"default");
        let big_value = vec![b'v'; (1 << 20) + 1];
        let long_key = vec![b'k'; 1025];
        let (kp, kl) = arg(b"big");
        let (vp, vl) = arg(&big_value);
        // SAFETY: see above.
        let value = unsafe { kv_set(sp, sl, kp, kl, vp, vl) };
        let (kp, kl) = arg(&long_key);
        let (vp, vl) = arg(b"v");
        // SAFETY: see above.
        let key = unsafe { kv_set(sp, sl, kp, kl, vp, vl) };
        format!("value={value}\nkey={key}\n")
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use wisp_sdk::kv::testing;

    fn kv(query: &str) -> (u16, String) {
        let req = Request::new([("QUERY_STRING", query)], vec![], vec![]);
        let res = op(&req);
        (
            res.status(),
            String::from_utf8(res.body_bytes().to_vec()).unwrap(),
        )
    }

    fn ok(query: &str) -> String {
        let (status, body) = kv(query);
        assert_eq!(status, 200, "{query}");
        body
    }

    #[test]
    fn every_op() {
        testing::reset();
        assert_eq!(ok("op=get&key=k"), "missing");
        assert_eq!(ok("op=set&key=k&value=hello+world"), "ok");
        assert_eq!(ok("op=get&key=k"), "ok hello world");
        assert_eq!(ok("op=exists&key=k"), "true");
        assert_eq!(ok("op=delete&key=k"), "true");
        assert_eq!(ok("op=delete&key=k"), "false");
        assert_eq!(ok("op=exists&key=k"), "false");
        assert_eq!(ok("op=incr&key=n"), "count=1");
        assert_eq!(ok("op=incr&key=n&delta=-5"), "count=-4");
        assert_eq!(ok("op=counter&key=n"), "count=-4");
        assert_eq!(ok("op=get&key=n"), "ok -4");
        assert_eq!(ok("op=cas&key=c&value=1"), "true");
        assert_eq!(ok("op=cas&key=c&value=2"), "false");
        assert_eq!(ok("op=cas&key=c&expected=1&value=2"), "true");
        assert_eq!(ok("op=cas&key=c&expected=2"), "true");
        assert_eq!(ok("op=exists&key=c"), "false");
        assert_eq!(ok("op=set&key=big&size=300"), "ok");
        assert_eq!(ok("op=get&key=big"), format!("ok {}", "x".repeat(300)));
    }

    #[test]
    fn listing() {
        testing::reset();
        for key in ["u:b", "u:a", "v", "u:c"] {
            ok(&format!("op=set&key={key}"));
        }
        assert_eq!(ok("op=list&prefix=u:"), "u:a\nu:b\nu:c\n");
        assert_eq!(ok("op=list&prefix=u:&buf=1"), "u:a\nu:b\nu:c\n");
        assert_eq!(ok("op=list"), "u:a\nu:b\nu:c\nv\n");
        assert_eq!(ok("op=list&prefix=w"), "");
        assert_eq!(ok("op=page&prefix=u:&buf=14"), "u:a\nu:b\n");
        assert_eq!(ok("op=page&prefix=u:&after=u:b&buf=14"), "u:c\n");
        assert_eq!(ok("op=page&prefix=u:&after=u:c"), "");
        assert_eq!(
            ok("op=page&prefix=u:&buf=6"),
            "error -7 the buffer cannot hold the next key"
        );
    }

    #[test]
    fn errors() {
        testing::reset();
        assert_eq!(
            ok("op=get"),
            "error -3 invalid key: a key is 1 to 1024 bytes"
        );
        assert!(ok("op=set&store=nope&key=k").starts_with("error -2 "));
        assert!(ok(&format!("op=set&key=k&size={}", (1 << 20) + 1)).starts_with("error -4 "));
        ok("op=set&key=t&value=text");
        assert!(ok("op=incr&key=t").starts_with("error -6 "));
        testing::fail_writes(true);
        assert!(ok("op=set&key=k").starts_with("error -8 "));
        assert_eq!(kv("op=nothing").0, 400);
        assert_eq!(kv("").0, 400);
    }
}
