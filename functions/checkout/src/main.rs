//! Orders, on the routes `/api/checkout` and `/api/orders/...`: the start of a pipeline that
//! `payment` (a subscriber of the topic `orders`) and `audit` (a watcher of the store `orders`)
//! carry on.
//!
//! - `POST /api/checkout` with a JSON body such as `{"item": "book", "amount": 12}` places an
//!   order: it takes the next id from the counter `next-order-id`, publishes the order on the
//!   topic `orders`, stores it under `order/<id>` as
//!   `{"id":"<id>","item":"book","amount":12,"status":"pending"}` and answers `202` with
//!   `{"id":"<id>"}` and a `Location`. A body that is not such an object is a 400, a subscriber
//!   or watcher too far behind a 503 with `Retry-After: 1`.
//! - `GET /api/orders/{id}` answers the stored order (200), or a 404 `{"error":"no such order"}`.
//!
//! Any other method is a 405 with `Allow`, any other path a 404. Both keys are in the shared
//! store `orders`, which every function that lists it in `shared_stores` sees.

mod order;

use order::NewOrder;
use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::topics::{self, PublishError};
use wisp_sdk::{Request, Response, json_string};

/// The shared store of orders, and the topic each new one goes out on.
const ORDERS: &str = "orders";

fn main() {
    wisp_sdk::serve(handle)
}

fn handle(req: Request) -> Response {
    let path = format!("{}{}", req.script_name(), req.path());
    if path == "/api/checkout" {
        return match req.method() {
            "POST" => checkout(&req),
            _ => error(405, "use POST").header("Allow", "POST"),
        };
    }
    match (path.strip_prefix("/api/orders/"), req.method()) {
        (Some(id), "GET" | "HEAD") => show(id),
        (Some(_), _) => error(405, "use GET").header("Allow", "GET"),
        (None, _) => error(404, "not found"),
    }
}

fn checkout(req: &Request) -> Response {
    let order = match NewOrder::parse(req.body()) {
        Ok(order) => order,
        Err(message) => return error(400, message),
    };
    let store = Store::open(ORDERS);
    let id = match store.increment("next-order-id", 1) {
        Ok(n) => n.to_string(),
        Err(e) => return store_error("next-order-id", e),
    };
    let json = order.to_json(&id);
    // Publish first, then store: `publish` only puts the message in this invocation's outbox,
    // which the host commits together with the order's write, and only if this invocation
    // succeeds. So `payment` can never see a message whose order is not stored, whichever
    // comes first here. This order leaves nothing behind when the topic is full (no pending
    // order that nobody will pay), only an unused id; and when the write fails, the failure
    // status below drops the message with it.
    match topics::publish(ORDERS, &json) {
        Ok(()) => {}
        Err(PublishError::QueueFull) => return try_later("the order queue is full"),
        Err(PublishError::MessageTooLarge) => return error(413, "the order is too large"),
        Err(e) => {
            wisp_sdk::log(format_args!("checkout: publish order {id}: {e}"));
            return error(500, &e.to_string());
        }
    }
    let key = format!("order/{id}");
    if let Err(e) = store.set(&key, &json) {
        return store_error(&key, e);
    }
    let id = json_string(&id);
    Response::json(202, format!(r#"{{"id":{id}}}"#))
        .header("Location", format!("/api/orders/{}", id.trim_matches('"')))
}

fn show(id: &str) -> Response {
    match Store::open(ORDERS).get(format!("order/{id}")) {
        Ok(Some(order)) => Response::new(200)
            .header("Content-Type", "application/json")
            .body(order),
        // An id too long for a key names no order either.
        Ok(None) | Err(KvError::InvalidKey) => error(404, "no such order"),
        Err(e) => store_error(id, e),
    }
}

fn store_error(key: &str, e: KvError) -> Response {
    if e == KvError::QueueFull {
        return try_later("the order log is behind");
    }
    wisp_sdk::log(format_args!("checkout: {key}: {e}"));
    error(500, &e.to_string())
}

/// A 503 that tells the client when to try again: a full queue drains on its own.
fn try_later(message: &str) -> Response {
    error(503, message).header("Retry-After", "1")
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, format!(r#"{{"error":{}}}"#, json_string(message)))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
