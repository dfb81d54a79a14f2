//! A test function for the runtime's end-to-end tests of events (not in `wisp.json`, like
//! `hostile`). Every event it gets is recorded in its `default` store, and the payload's words
//! say how the delivery should go; HTTP routes read the record, publish and write keys.
//!
//! **Events** (`WISP_TRIGGER` set), in this order:
//!
//! 0. For the benchmarks: for a timer's tick, or a message whose payload has a word
//!    `stamp=<µs since the epoch>`, log `latency_us=<µs from then to now>`.
//! 1. If the variable `SLEEP_MS` (from the manifest's `env`) is a number, sleep that many ms.
//! 2. The payload, as text, is a list of words separated by whitespace: each `sleep=MS` sleeps
//!    MS ms more. A word `quiet` ends the delivery here, with success and nothing recorded.
//! 3. Record the delivery: `n = increment("seq")`, then set `event/<n as 10 digits>` to one line:
//!    - topic: `trigger=topic topic=<T> id=<ID> attempt=<A> payload=<payload>`
//!    - timer: `trigger=timer timer=<schedule> at=<scheduled_at ms>`
//!    - kv: `trigger=kv store=<S> key=<K> op=<set|delete> value=<payload>`
//!    - any other trigger: `trigger=<name> payload=<payload>`
//!
//!    Every field is written with the bytes 0x20 to 0x7E as they are, except `%`, and every
//!    other byte (`%`, a control byte such as a newline, any non-ASCII byte) as `%XX` in
//!    uppercase hex: `a%00b` for a key with a NUL, `50%25` for `50%`.
//!    If recording fails, the answer is 500 with `record failed: <error>`.
//! 4. Then, by the payload's words: `trap` panics; else `fail` answers 500; else
//!    `fail-until=KEY` answers 500 unless the key KEY exists in the `default` store; otherwise
//!    it increments `ok/<marker>` (the message id, the kv key, the timer's schedule, or the
//!    unknown trigger's name) and answers 204. The marker counts the successful deliveries.
//!
//! **HTTP** (no `WISP_TRIGGER`), by the last segment of the path, whatever the method; each
//! answers `text/plain`:
//!
//! - `log`: 200, every recorded line in sequence order, each ending with `\n`.
//! - `publish?topic=T&n=N&payload=P&size=B&stamp=1&then=ok|fail|trap`: publishes N messages on T
//!   (default: one), each P (default `hello`), or B bytes of `x` when `size` is given, followed
//!   with `stamp=1` by ` stamp=<µs since the epoch>` (for the benchmarks), stopping at the
//!   first error. Then answers `published=<K> code=<C>` (K published, C 0 or the
//!   first error's code): 200 for `then=ok` (the default), 500 for `then=fail`; `then=trap`
//!   panics (so nothing is published).
//! - `storm?topic=T&size=B&payload=P`: publishes the same way until an error (at most 100,000
//!   times), and answers 200 `published=<K> code=<C>`.
//! - `set?store=S&key=K&value=V&size=B&then=...`: sets K in S (default `default`) to V (default
//!   empty) or B bytes of `x`, and answers `code=<C>` (0 or the kv error code); `then` as for
//!   `publish`.
//! - `delete?store=S&key=K&then=...`: deletes K from S, and answers `code=<C>` likewise.
//! - `get?store=S&key=K`: 200 `value=<the value as it is>`, `missing`, or `code=<C>`.
//!
//! Anything else is a 404.

mod event;
mod http;

use wisp_sdk::events::Event;
use wisp_sdk::{Request, Response};

fn main() {
    wisp_sdk::serve(handle)
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_micros() as u64)
}

fn handle(req: Request) -> Response {
    match req.event() {
        Event::Http => http::handle(&req),
        event => event::handle(&req, &event),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
