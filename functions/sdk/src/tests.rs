use super::*;
use crate::request::{Lookup, LookupList, percent_decode, read_body};
use crate::response::without_line_breaks;
use std::io::{self, Read};

fn request(env: &[(&str, &str)]) -> Request {
    Request::new(
        env.iter().copied(),
        vec!["f.wasm".to_string()],
        b"body".to_vec(),
    )
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b+c"), "a b c");
    assert_eq!(percent_decode("%e2%9C%93"), "\u{2713}");
    assert_eq!(percent_decode("%2B"), "+");
    // Malformed escapes are kept, not dropped.
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%4"), "%4");
    assert_eq!(percent_decode("%zz%"), "%zz%");
    assert_eq!(percent_decode("%ff"), "\u{fffd}");
    assert_eq!(percent_decode(""), "");
}

#[test]
fn query_parameters() {
    let req = request(&[("QUERY_STRING", "city=New%20York&x=1&x=2&flag&&a%3Db=c%26d")]);
    assert_eq!(
        req.query_string(),
        "city=New%20York&x=1&x=2&flag&&a%3Db=c%26d"
    );
    assert_eq!(req.query("city").as_deref(), Some("New York"));
    assert_eq!(req.query("x").as_deref(), Some("1"));
    assert_eq!(req.query("flag").as_deref(), Some(""));
    assert_eq!(req.query("a=b").as_deref(), Some("c&d"));
    assert_eq!(req.query("missing"), None);
    assert_eq!(req.query_pairs().count(), 5);
    assert_eq!(request(&[]).query("x"), None);
}

#[test]
fn headers_are_case_insensitive() {
    let req = request(&[
        ("HTTP_USER_AGENT", "curl/8"),
        ("HTTP_X_REQUEST_ID", "42"),
        ("CONTENT_TYPE", "application/json"),
        ("CONTENT_LENGTH", "4"),
    ]);
    assert_eq!(req.header("User-Agent"), Some("curl/8"));
    assert_eq!(req.header("user-agent"), Some("curl/8"));
    assert_eq!(req.header("x-request-id"), Some("42"));
    assert_eq!(req.header("Content-Type"), Some("application/json"));
    assert_eq!(req.header("content-length"), Some("4"));
    assert_eq!(req.header("accept"), None);
    assert_eq!(req.content_type(), Some("application/json"));
    assert_eq!(request(&[("CONTENT_TYPE", "")]).content_type(), None);
}

#[test]
fn request_accessors() {
    let req = request(&[
        ("REQUEST_METHOD", "POST"),
        ("PATH_INFO", "/hello-c/x"),
        ("X_MATCHED_ROUTE", "/hello-c/..."),
        ("WISP_FUNCTION", "hello-c"),
    ]);
    assert_eq!(req.method(), "POST");
    assert_eq!(req.path(), "/hello-c/x");
    assert_eq!(req.matched_route(), Some("/hello-c/..."));
    assert_eq!(req.var("WISP_FUNCTION"), Some("hello-c"));
    assert_eq!(req.args(), ["f.wasm"]);
    assert_eq!(req.body(), b"body");
    assert_eq!(req.text(), Some("body"));
    let names: Vec<&str> = req.vars().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "PATH_INFO",
            "REQUEST_METHOD",
            "WISP_FUNCTION",
            "X_MATCHED_ROUTE"
        ]
    );
    assert_eq!(req.into_body(), b"body");

    let empty = Request::default();
    assert_eq!(
        (empty.method(), empty.path(), empty.query_string()),
        ("", "", "")
    );
    let binary = Request::new(Vec::<(String, String)>::new(), vec![], vec![0xff]);
    assert_eq!(binary.text(), None);
}

#[test]
fn text_and_json_responses() {
    assert_eq!(
        Response::text(200, "hi").to_cgi(),
        b"Status: 200 OK\nContent-Type: text/plain; charset=utf-8\n\nhi"
    );
    assert_eq!(
        Response::json(404, "{}").to_cgi(),
        b"Status: 404 Not Found\nContent-Type: application/json\n\n{}"
    );
    assert_eq!(Response::not_found().status(), 404);
}

#[test]
fn headers_and_defaults() {
    let res = Response::new(201)
        .header("X-Custom", "yes")
        .header("Location", "/somewhere")
        .header("Set-Cookie", "a=1")
        .header("Set-Cookie", "b=2")
        .body("made");
    assert_eq!(
        String::from_utf8(res.to_cgi()).unwrap(),
        "Status: 201 Created\nContent-Type: text/plain; charset=utf-8\nX-Custom: yes\n\
         Location: /somewhere\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nmade"
    );
    assert_eq!(res.headers().len(), 4);
    assert_eq!(res.body_bytes(), b"made");
}

#[test]
fn content_type_replaces_and_status_header_is_ignored() {
    let res = Response::json(200, "{}")
        .header("content-type", "application/problem+json")
        .header("Status", "500 Oops");
    assert_eq!(
        res.to_cgi(),
        b"Status: 200 OK\nContent-Type: application/problem+json\n\n{}"
    );
}

#[test]
fn line_breaks_cannot_inject_headers() {
    let res = Response::new(200).header("X-A", "1\r\nX-B: 2");
    assert_eq!(res.headers()[0].1, "1  X-B: 2");
    assert!(res.to_cgi().ends_with(b"X-A: 1  X-B: 2\n\n"));
}

#[test]
fn unknown_status_has_an_empty_reason() {
    assert!(Response::new(299).to_cgi().starts_with(b"Status: 299 \n"));
    assert!(Response::new(418).to_cgi().starts_with(b"Status: 418 \n"));
}

#[test]
fn json_strings() {
    assert_eq!(json_string("plain"), "\"plain\"");
    assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(json_string("\n\r\t\u{1}"), r#""\n\r\t\u0001""#);
    assert_eq!(json_string("\u{e9}\u{2713}"), "\"\u{e9}\u{2713}\"");
    assert_eq!(json_string(""), r#""""#);
    // Runs between escapes are copied whole, multibyte characters and DEL included.
    assert_eq!(
        json_string("\u{0}\u{1f}\u{7f} \u{e9}\"\u{2713}\\x"),
        "\"\\u0000\\u001f\u{7f} \u{e9}\\\"\u{2713}\\\\x\""
    );
}

#[test]
fn process_environment_is_read_on_demand() {
    // Every test that reads or writes the process environment is in this one, so no other
    // test sees it change.
    const NAME: &str = "WISP_SDK_TEST_LAZY";
    let req = Request::from_process_env(Vec::new());
    // SAFETY: std serializes its own environment access, and nothing else in these tests reads
    // the environment.
    unsafe { std::env::set_var(NAME, "after the request was built") };
    unsafe { std::env::set_var("HTTP_X_WISP_SDK_TEST", "header") };
    assert_eq!(req.var(NAME), Some("after the request was built"));
    // Read once: a handed-out `&str` stays valid and the same.
    let first = req.var(NAME).unwrap();
    unsafe { std::env::set_var(NAME, "changed") };
    assert_eq!(req.var(NAME), Some("after the request was built"));
    assert_eq!(first, "after the request was built");
    assert_eq!(req.header("X-Wisp-Sdk-Test"), Some("header"));
    assert_eq!(req.var("WISP_SDK_TEST_UNSET"), None);
    assert_eq!(req.var("WISP_SDK_TEST_UNSET"), None);
    // getenv would match `NAME=after...` for this; no variable has `=` in its name.
    assert_eq!(req.var(&format!("{NAME}=changed")), None);
    assert_eq!(req.var(""), None);

    // Enumerating reads everything, sorted, as `vars_os` has it now.
    let names: Vec<&str> = req.vars().map(|(k, _)| k).collect();
    assert!(names.is_sorted());
    assert!(names.contains(&NAME));
    assert_eq!(names.len(), std::env::vars_os().count());
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(req.args(), args);

    // A given request and a read one are equal when they say the same.
    let vars = std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    });
    let given = Request::new(vars, args, b"x".to_vec());
    assert_eq!(Request::from_process_env(b"x".to_vec()), given);
    assert_ne!(Request::from_process_env(b"y".to_vec()), given);
    assert_eq!(req.clone().var(NAME), Some("changed"));
    assert!(format!("{req:?}").contains(NAME));
    unsafe { std::env::remove_var(NAME) };
    unsafe { std::env::remove_var("HTTP_X_WISP_SDK_TEST") };
}

#[test]
fn requests_stay_send_and_sync() {
    fn shareable<T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    shareable::<Request>();
    shareable::<Response>();
}

#[test]
fn a_long_lookup_list_drops_without_recursion() {
    // A recursive drop would need a stack frame per entry: far more than a test thread has.
    let mut list = LookupList::new();
    for _ in 0..1_000_000 {
        list = LookupList::from(Box::new(Lookup {
            name: String::new(),
            value: None,
            next: list,
        }));
    }
    drop(list);
}

/// A reader that hands out `data` in chunks of at most `chunk` bytes, after one `Interrupted`.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
    interrupted: bool,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn chunked(data: &[u8]) -> Chunked<'_> {
    Chunked {
        data,
        chunk: 1000,
        interrupted: false,
    }
}

#[test]
fn no_body_reads_once_and_looks_nothing_up() {
    let body = read_body(io::empty(), || panic!("CONTENT_LENGTH looked up")).unwrap();
    assert!(body.is_empty());
    assert_eq!(body.capacity(), 0);
    let body = read_body(chunked(b""), || panic!("CONTENT_LENGTH looked up")).unwrap();
    assert!(body.is_empty());
}

#[test]
fn a_body_is_all_of_stdin_in_a_buffer_of_its_length() {
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let body = read_body(chunked(&data), || Some("10000".into())).unwrap();
    assert_eq!(body, data);
    assert_eq!(body.capacity(), data.len());
    // Small enough for the first read.
    let body = read_body(chunked(b"hi"), || Some("2".into())).unwrap();
    assert_eq!((body.as_slice(), body.capacity()), (&b"hi"[..], 2));
    // Whatever CONTENT_LENGTH says, or if it is not there, the body is all of stdin.
    for length in [
        None,
        Some("0"),
        Some("5"),
        Some("junk"),
        Some("18446744073709551615"),
    ] {
        let body = read_body(chunked(&data), || length.map(String::from)).unwrap();
        assert_eq!(body, data, "{length:?}");
    }
}

#[test]
fn a_body_that_cannot_be_read_is_an_error() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }
    let err = read_body(Broken, || None).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    let err = read_body(io::Read::chain(&b"start"[..], Broken), || None).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn header_values_without_line_breaks_are_not_copied() {
    let value = String::from("text/plain; charset=utf-8");
    let at = value.as_ptr();
    let kept = without_line_breaks(value);
    assert_eq!(kept.as_ptr(), at);
    assert_eq!(without_line_breaks("a\rb\nc\r\n".into()), "a b c  ");
}

#[test]
fn cgi_output_is_written_into_one_buffer_of_its_size() {
    let mut res = Response::new(200).body(vec![b'x'; 10_000]);
    for i in 0..50 {
        res = res.header(format!("X-Header-{i}"), "value");
    }
    let out = res.to_cgi();
    // The bound counts five digits for the status: two more than it has.
    assert!(
        out.capacity() - out.len() <= 2,
        "{}",
        out.capacity() - out.len()
    );
    assert!(out.ends_with(&[b'x'; 10_000]));
}

#[test]
fn status_codes_in_decimal() {
    for (status, line) in [
        (0, "Status: 0 \n"),
        (7, "Status: 7 \n"),
        (99, "Status: 99 \n"),
        (100, "Status: 100 Continue\n"),
        (599, "Status: 599 \n"),
        (65535, "Status: 65535 \n"),
    ] {
        let out = String::from_utf8(Response::new(status).to_cgi()).unwrap();
        assert!(out.starts_with(line), "{out:?}");
    }
}

mod arena {
    use crate::arena::{ARENA_SIZE, Arena};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// The system allocator, counting the blocks it has out; or one that always fails.
    #[derive(Default)]
    struct Backing {
        live: Cell<isize>,
        fails: bool,
    }

    unsafe impl GlobalAlloc for &Backing {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if self.fails {
                return std::ptr::null_mut();
            }
            self.live.set(self.live.get() + 1);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            self.live.set(self.live.get() - 1);
            unsafe { System.dealloc(block, layout) }
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn small_blocks_come_from_one_arena() {
        let backing = Backing::default();
        let arena = Arena::new(&backing);
        unsafe {
            let a = arena.alloc(layout(10, 1));
            let b = arena.alloc(layout(8, 8));
            // The arena itself is the one block taken from the backing allocator.
            assert_eq!(backing.live.get(), 1);
            assert_eq!(b.addr() % 8, 0);
            assert!(b.addr() >= a.addr() + 10);
            let aligned = arena.alloc(layout(1, 256));
            assert_eq!(aligned.addr() % 256, 0);
            // Freeing the last block makes room for the next; others wait for the end.
            arena.dealloc(aligned, layout(1, 256));
            let c = arena.alloc(layout(1, 256));
            assert_eq!(c, aligned);
            arena.dealloc(a, layout(10, 1));
            let d = arena.alloc(layout(10, 1));
            assert!(d.addr() > c.addr());
            assert_eq!(backing.live.get(), 1);
        }
    }

    #[test]
    fn what_does_not_fit_goes_to_the_backing_allocator_and_back() {
        let backing = Backing::default();
        let arena = Arena::new(&backing);
        unsafe {
            let big = arena.alloc(layout(ARENA_SIZE + 1, 1));
            assert_eq!(backing.live.get(), 2);
            let rest = arena.alloc(layout(ARENA_SIZE - 100, 1));
            let no_room = arena.alloc(layout(200, 1));
            assert_eq!(backing.live.get(), 3);
            no_room.write_bytes(7, 200);
            let grown = arena.realloc(no_room, layout(200, 1), 5000);
            assert_eq!(*grown.add(199), 7);
            arena.dealloc(grown, layout(5000, 1));
            arena.dealloc(big, layout(ARENA_SIZE + 1, 1));
            assert_eq!(backing.live.get(), 1);
            arena.dealloc(rest, layout(ARENA_SIZE - 100, 1));
            assert_eq!(backing.live.get(), 1);
        }
    }

    #[test]
    fn the_last_block_grows_and_shrinks_in_place() {
        let backing = Backing::default();
        let arena = Arena::new(&backing);
        unsafe {
            let a = arena.alloc(layout(16, 8));
            a.write_bytes(1, 16);
            let grown = arena.realloc(a, layout(16, 8), 4000);
            assert_eq!(grown, a);
            let shrunk = arena.realloc(grown, layout(4000, 8), 8);
            assert_eq!(shrunk, a);
            // Shrinking gave the room back.
            let b = arena.alloc(layout(8, 8));
            assert_eq!(b.addr(), a.addr() + 8);
            // `a` is no longer the last block: growing it moves it, with its bytes.
            let moved = arena.realloc(a, layout(8, 8), 32);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 8), [1; 8]);
            // Too big for what is left of the arena, even in place.
            let last = arena.alloc(layout(8, 8));
            let out = arena.realloc(last, layout(8, 8), ARENA_SIZE);
            assert_eq!(backing.live.get(), 2);
            arena.dealloc(out, layout(ARENA_SIZE, 8));
            assert_eq!(backing.live.get(), 1);
            // ... and `last` was freed when it moved out, so its room is used again.
            assert_eq!(arena.alloc(layout(8, 8)), last);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_where_memory_was_used() {
        let backing = Backing::default();
        let arena = Arena::new(&backing);
        unsafe {
            let a = arena.alloc(layout(64, 1));
            a.write_bytes(0xff, 64);
            arena.dealloc(a, layout(64, 1));
            let z = arena.alloc_zeroed(layout(64, 1));
            assert_eq!(z, a);
            assert_eq!(std::slice::from_raw_parts(z, 64), [0; 64]);
            let big = arena.alloc_zeroed(layout(ARENA_SIZE * 2, 1));
            assert!(
                std::slice::from_raw_parts(big, ARENA_SIZE * 2)
                    .iter()
                    .all(|&b| b == 0)
            );
            arena.dealloc(big, layout(ARENA_SIZE * 2, 1));
        }
    }

    #[test]
    fn without_memory_it_fails_as_the_backing_allocator_does() {
        let backing = Backing {
            fails: true,
            ..Backing::default()
        };
        let arena = Arena::new(&backing);
        unsafe {
            assert!(arena.alloc(layout(8, 8)).is_null());
            assert!(arena.alloc_zeroed(layout(8, 8)).is_null());
        }
    }
}
