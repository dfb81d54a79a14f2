//! Pays for orders: a subscriber of the topic `orders`, which `checkout` publishes each new
//! order on. It has no routes.
//!
//! For each message, such as `{"id":"7","item":"book","amount":12,"status":"pending"}`, it
//! loads `order/<id>` from the shared store `orders`, sets its `status` to `"paid"`, adds
//! `"paid_at": <ms since the Unix epoch>`, and logs `paid order <id>`. The write is a
//! compare-and-swap, so a change made in between (by another instance, say) is never
//! overwritten: it reads the order again and decides again.
//!
//! Every outcome that retrying cannot change succeeds (204), so the host does not redeliver it:
//! an order already paid (a redelivery changes nothing), an order that is not pending, a
//! missing order, and a malformed message or order, each logged. A message is malformed when
//! retrying cannot help, so it is logged (where an operator sees it) rather than failed
//! through every attempt into the dead letters. A store error fails (500, or 503 when a
//! watcher is too far behind), and the host retries the message later.
//!
//! An HTTP request (it has no route, but could be given one) is a 404.

mod order;

use order::Payment;
use std::time::{SystemTime, UNIX_EPOCH};
use wisp_sdk::events::{Event, TopicMessage};
use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::{Request, Response};

/// The shared store that holds the orders.
const ORDERS: &str = "orders";

/// How many times to read and swap before giving up on an order that keeps changing; the host
/// then retries the message later.
const MAX_TRIES: usize = 8;

fn main() {
    wisp_sdk::serve(|req| handle(req, now_ms()))
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.unwrap_or_default().as_millis() as u64
}

fn handle(req: Request, now_ms: u64) -> Response {
    match req.event() {
        Event::Topic(message) => pay(&message, req.body(), now_ms),
        Event::Http => Response::not_found(),
        // No other trigger is configured; nothing to do for one.
        _ => Response::new(204),
    }
}

fn pay(message: &TopicMessage, body: &[u8], now_ms: u64) -> Response {
    let Some(id) = order::id_of(body) else {
        let text = String::from_utf8_lossy(body);
        let start: String = text.chars().take(200).collect();
        wisp_sdk::log(format_args!(
            "payment: message {} (attempt {}) is not an order, dropped: {start:?}",
            message.id, message.attempt
        ));
        return Response::new(204);
    };
    let store = Store::open(ORDERS);
    let key = format!("order/{id}");
    for _ in 0..MAX_TRIES {
        let stored = match store.get(&key) {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                wisp_sdk::log(format_args!("payment: no order {id}, nothing to pay"));
                return Response::new(204);
            }
            Err(e) => return failed(&id, e),
        };
        let paid = match order::pay(&stored, now_ms) {
            Payment::Pay(paid) => paid,
            Payment::AlreadyPaid => return Response::new(204),
            Payment::Skip(why) => {
                wisp_sdk::log(format_args!("payment: order {id} not paid: {why}"));
                return Response::new(204);
            }
        };
        match store.compare_and_swap(&key, Some(&stored), Some(paid.as_bytes())) {
            Ok(true) => {
                wisp_sdk::log(format_args!("paid order {id}"));
                return Response::new(204);
            }
            // Changed since it was read: read it again.
            Ok(false) => continue,
            Err(e) => return failed(&id, e),
        }
    }
    wisp_sdk::log(format_args!("payment: order {id} kept changing; later"));
    Response::text(500, "the order kept changing\n")
}

/// A failure, so that the host retries the message later.
fn failed(id: &str, e: KvError) -> Response {
    wisp_sdk::log(format_args!("payment: order {id}: {e}"));
    let status = if e == KvError::QueueFull { 503 } else { 500 };
    Response::text(status, format!("{e}\n"))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
