use super::*;

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
}
