//! An audit log of the orders: a watcher of the shared store `orders` (its configuration's
//! `"watch": [{"store": "orders", "prefix": "order/"}]`), so the host invokes it for every set
//! or delete of a key under `order/`, whichever function made it.
//!
//! - For each change it appends an entry to its own `default` store, under
//!   `log/<n as 20 digits>` with `n` from the counter `seq`:
//!   `{"key":"order/7","op":"set","value":<the new value>}`. The value is embedded as JSON when
//!   it parses as JSON, as a JSON string (invalid UTF-8 replaced) when not, and is `null` for a
//!   delete. Answers 204; a store error answers 500, so the host retries the change.
//! - `GET /api/audit` answers `{"entries":[...]}`: the last 20 entries, oldest first.
//!
//! Other methods are a 405 with `Allow: GET`. Delivery is at least once, so a change retried
//! after a failure may be logged twice.

mod entry;

use wisp_sdk::events::{Event, KvChange};
use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::{Request, Response};

/// How many entries `GET` shows.
const SHOWN: i64 = 20;

fn main() {
    wisp_sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    match req.event() {
        Event::Kv(change) => record(&change, req.body()),
        Event::Http => match req.method() {
            "GET" | "HEAD" => show(),
            _ => Response::text(405, "use GET\n").header("Allow", "GET"),
        },
        // It has no topics or timers configured: nothing to do.
        _ => Response::new(204),
    }
}

/// The key of entry `n`: zero-padded, so the keys sort in the order they were written.
fn entry_key(n: i64) -> String {
    format!("log/{n:020}")
}

fn record(change: &KvChange, value: &[u8]) -> Response {
    let store = Store::default_store();
    let entry = entry::to_json(change, value);
    let written = store
        .increment("seq", 1)
        .and_then(|n| store.set(entry_key(n), &entry));
    match written {
        Ok(()) => Response::new(204),
        Err(e) => failed(e),
    }
}

fn show() -> Response {
    let store = Store::default_store();
    let last = match store.counter("seq") {
        Ok(last) => last,
        Err(e) => return failed(e),
    };
    // The last entries by number rather than a listing of every key: 20 reads, however long
    // the log. A number whose write failed has no entry, and is skipped.
    let mut body = String::from(r#"{"entries":["#);
    let mut first = true;
    for n in (last - SHOWN + 1).max(1)..=last {
        match store.get(entry_key(n)) {
            Ok(Some(entry)) => {
                if !first {
                    body.push(',');
                }
                first = false;
                body.push_str(&String::from_utf8_lossy(&entry));
            }
            Ok(None) => {}
            Err(e) => return failed(e),
        }
    }
    body.push_str("]}");
    Response::json(200, body)
}

fn failed(e: KvError) -> Response {
    wisp_sdk::log(format_args!("audit: {e}"));
    Response::text(500, format!("{e}\n"))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
