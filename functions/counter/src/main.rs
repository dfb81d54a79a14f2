//! Named counters in the key-value store, on the route `/api/counter/...`:
//!
//! - `POST /api/counter/{name}` adds one to the counter `name` and answers the new count;
//! - `GET /api/counter/{name}` answers the current count (0 for a counter never counted);
//!
//! both as `{"name":"<name>","count":<n>}`. `HEAD` is answered as `GET` (the server sends the
//! headers only). Any other method is a 405 with `Allow: GET, POST`, and a missing name a 400.
//!
//! The counter `name` is the key `name` in the `default` store, kept in this function's own
//! namespace; the increment is atomic, so concurrent requests never lose a count, and the
//! host makes it durable before the response goes out.

use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::{Request, Response, json_string};

fn main() {
    wisp_sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    let post = match req.method() {
        "POST" => true,
        "GET" | "HEAD" => false,
        _ => return error(405, "use GET or POST").header("Allow", "GET, POST"),
    };
    // PATH_INFO is the path below the route: `/hits` for `/api/counter/hits`.
    let name = req.path().strip_prefix('/').unwrap_or(req.path());
    if name.is_empty() {
        return error(400, "name the counter: /api/counter/{name}");
    }
    let store = Store::default_store();
    let count = if post {
        store.increment(name, 1)
    } else {
        store.counter(name)
    };
    match count {
        Ok(count) => Response::json(
            200,
            format!(r#"{{"name":{},"count":{count}}}"#, json_string(name)),
        ),
        Err(KvError::InvalidKey) => error(400, "a counter name is at most 1024 bytes"),
        Err(KvError::NotANumber) => error(409, "the counter is not a number, or would overflow"),
        Err(e) => {
            wisp_sdk::log(format_args!("counter {name:?}: {e}"));
            error(500, &e.to_string())
        }
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, format!(r#"{{"error":{}}}"#, json_string(message)))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use wisp_sdk::kv::testing;

    fn call(method: &str, path: &str) -> Response {
        handle(Request::new(
            [("REQUEST_METHOD", method), ("PATH_INFO", path)],
            vec![],
            vec![],
        ))
    }

    fn body(res: &Response) -> &str {
        std::str::from_utf8(res.body_bytes()).unwrap()
    }

    #[test]
    fn counts() {
        testing::reset();
        let res = call("GET", "/hits");
        assert_eq!(
            (res.status(), body(&res)),
            (200, r#"{"name":"hits","count":0}"#)
        );
        assert_eq!(body(&call("POST", "/hits")), r#"{"name":"hits","count":1}"#);
        assert_eq!(body(&call("POST", "/hits")), r#"{"name":"hits","count":2}"#);
        assert_eq!(
            body(&call("POST", "/other")),
            r#"{"name":"other","count":1}"#
        );
        let res = call("GET", "/hits");
        assert_eq!(
            (res.status(), body(&res)),
            (200, r#"{"name":"hits","count":2}"#)
        );
        assert_eq!(
            res.headers()[0],
            ("Content-Type".into(), "application/json".into())
        );
        assert_eq!(body(&call("HEAD", "/hits")), r#"{"name":"hits","count":2}"#);
        // Reading does not create the key.
        call("GET", "/never");
        assert!(!Store::default_store().exists("never").unwrap());
    }

    #[test]
    fn names_are_escaped_in_json() {
        testing::reset();
        let res = call("POST", "/a \"b\"/c");
        assert_eq!(body(&res), r#"{"name":"a \"b\"/c","count":1}"#);
    }

    #[test]
    fn bad_requests() {
        testing::reset();
        for path in ["", "/"] {
            assert_eq!(call("GET", path).status(), 400, "{path:?}");
            assert_eq!(call("POST", path).status(), 400, "{path:?}");
        }
        let res = call("DELETE", "/hits");
        assert_eq!(res.status(), 405);
        assert!(
            res.headers()
                .contains(&("Allow".into(), "GET, POST".into()))
        );
        let long = format!("/{}", "x".repeat(1025));
        assert_eq!(call("POST", &long).status(), 400);
    }

    #[test]
    fn store_errors() {
        testing::reset();
        Store::default_store().set("word", "forty").unwrap();
        assert_eq!(call("POST", "/word").status(), 409);
        assert_eq!(call("GET", "/word").status(), 409);
        testing::fail_writes(true);
        assert_eq!(call("POST", "/hits").status(), 500);
        testing::grant(&[]);
        assert_eq!(call("GET", "/hits").status(), 500);
    }
}
