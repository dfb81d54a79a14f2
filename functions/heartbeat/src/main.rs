//! A timer function: its configuration's `"timers": ["every 10s"]` makes the host invoke it
//! every ten seconds, and `GET /api/heartbeat` shows how it went.
//!
//! - On each tick it adds one to the counter `beats` and sets `last` to the tick's scheduled
//!   time (ms since the Unix epoch), both in its own `default` store, and answers 204.
//! - `GET /api/heartbeat` answers `{"beats":<n>,"last":<ms>}`, or `{"beats":0,"last":null}`
//!   before the first tick.
//!
//! Other methods are a 405 with `Allow: GET`; other events (it has none configured) are
//! ignored. A tick that fails to write answers 500: a failed event, with the error in the log.

use wisp_sdk::events::{Event, TimerTick};
use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::{Request, Response};

fn main() {
    wisp_sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    match req.event() {
        Event::Timer(tick) => beat(&tick),
        Event::Http => match req.method() {
            "GET" | "HEAD" => show(),
            _ => Response::text(405, "use GET\n").header("Allow", "GET"),
        },
        _ => Response::new(204),
    }
}

fn beat(tick: &TimerTick) -> Response {
    let store = Store::default_store();
    let written = store
        .increment("beats", 1)
        .and_then(|_| store.set("last", tick.scheduled_at_ms.to_string()));
    match written {
        Ok(()) => Response::new(204),
        Err(e) => failed(e),
    }
}

fn show() -> Response {
    let store = Store::default_store();
    let beats = match store.counter("beats") {
        Ok(beats) => beats,
        Err(e) => return failed(e),
    };
    // `last` is written as decimal text only by `beat`; anything else reads as never.
    let last = match store.get("last") {
        Ok(last) => last
            .and_then(|ms| String::from_utf8(ms).ok())
            .filter(|ms| ms.parse::<u64>().is_ok())
            .unwrap_or_else(|| "null".into()),
        Err(e) => return failed(e),
    };
    Response::json(200, format!(r#"{{"beats":{beats},"last":{last}}}"#))
}

fn failed(e: KvError) -> Response {
    wisp_sdk::log(format_args!("heartbeat: {e}"));
    Response::text(500, format!("{e}\n"))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use wisp_sdk::kv::testing;

    fn tick(at: u64) -> Response {
        let tick = Event::Timer(TimerTick {
            schedule: "every 10s".into(),
            scheduled_at_ms: at,
        });
        handle(Request::for_event(&tick, Vec::new()))
    }

    fn get(method: &str) -> Response {
        handle(Request::new([("REQUEST_METHOD", method)], vec![], vec![]))
    }

    fn body(res: &Response) -> &str {
        std::str::from_utf8(res.body_bytes()).unwrap()
    }

    #[test]
    fn counts_ticks_and_shows_the_last() {
        testing::reset();
        let res = get("GET");
        assert_eq!(
            (res.status(), body(&res)),
            (200, r#"{"beats":0,"last":null}"#)
        );
        assert_eq!(tick(1_700_000_000_000).status(), 204);
        assert_eq!(tick(1_700_000_010_000).status(), 204);
        let res = get("GET");
        assert_eq!(
            (res.status(), body(&res)),
            (200, r#"{"beats":2,"last":1700000010000}"#)
        );
        assert_eq!(res.headers()[0].1, "application/json");
    }

    #[test]
    fn other_methods_and_failures() {
        testing::reset();
        let res = get("POST");
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()[1], ("Allow".into(), "GET".into()));
        testing::fail_writes(true);
        assert_eq!(tick(1).status(), 500);
        testing::grant(&[]);
        assert_eq!(get("GET").status(), 500);
    }
}
