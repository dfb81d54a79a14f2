//! The clients: every HTTP route of the examples called round after round, each answer
//! checked. The orders they place through `checkout` are part of what `payment` and `audit`
//! work through in the background, so the end checks follow them too.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{Answer, Http};
use super::stats::Stats;
use super::{Done, pause};

/// How often each client places an order. An order is two changes to the watched keys (its
/// write, then its payment), and `audit`, the watcher, handles them one at a time: faster, and
/// its queue fills up until the writes are refused (`503`, by design).
const ORDER_EVERY: Duration = Duration::from_millis(100);

/// A pause between two rounds of a client's calls: the load is continuous, and still leaves
/// the shared machine some room.
const CLIENT_PAUSE: Duration = Duration::from_millis(2);

fn weather_is_whole(a: &Answer) -> bool {
    a.json().is_some_and(|json| {
        json.as_array().is_some_and(|cities| {
            cities.len() == 4
                && cities
                    .iter()
                    .all(|c| c["city"].is_string() && c["temperature_c"].is_number())
        })
    })
}

/// `{ "now": <ms> }`, both from Rust's `date` and from Go's.
fn is_a_date(a: &Answer) -> bool {
    a.json().is_some_and(|json| json["now"].as_u64().is_some())
}

/// Calls every route of the Rust and C examples, round after round, until `stop`.
pub(super) fn client(
    i: usize,
    addr: SocketAddr,
    stats: &Stats,
    stop: &AtomicBool,
    done: &Mutex<Done>,
) {
    let mut http = Http::new(addr);
    let name = format!("soak-{i}");
    let counter = format!("/api/counter/{name}");
    let mut count = 0;
    let mut round = 0u64;
    let mut next_order = Instant::now();
    while !stop.load(Relaxed) {
        round += 1;
        stats.check("GET /api/date", http.get("/api/date"), 200, is_a_date);
        let origin = [("Origin", "http://app.example")];
        stats.check(
            "GET /api/date (CORS)",
            http.call("GET", "/api/date", &origin, b""),
            200,
            |a| a.header("access-control-allow-origin") == Some("*") && is_a_date(a),
        );
        let preflight = [
            ("Origin", "http://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ];
        stats.check(
            "OPTIONS /api/date",
            http.call("OPTIONS", "/api/date", &preflight, b""),
            204,
            |a| a.header("access-control-allow-origin") == Some("*"),
        );
        stats.check(
            "GET /api/weather",
            http.get("/api/weather"),
            200,
            weather_is_whole,
        );
        stats.check(
            "GET /api/weather?city=",
            http.get("/api/weather?city=lisbon"),
            200,
            |a| a.json().is_some_and(|json| json["city"] == "Lisbon"),
        );
        stats.check(
            "HEAD /api/weather",
            http.call("HEAD", "/api/weather", &[], b""),
            200,
            |a| a.body.is_empty() && a.header("content-length").is_some_and(|l| l != "0"),
        );
        let path = format!("/soak/{i}/{round}");
        stats.check(
            "GET /hello-c/...",
            http.get(&format!("/hello-c{path}")),
            200,
            |a| a.body == format!("Hello from C! method=GET path={path}\n"),
        );
        stats.check(
            "POST /hello-c/...",
            http.call("POST", "/hello-c/post", &[], b"a body"),
            200,
            |a| a.body == "Hello from C! method=POST path=/post\n",
        );
        let expect = format!(r#"{{"name":"{name}","count":{}}}"#, count + 1);
        if stats
            .check(
                "POST /api/counter/NAME",
                http.call("POST", &counter, &[], b""),
                200,
                |a| a.body == expect,
            )
            .is_some()
        {
            count += 1;
        }
        let expect = format!(r#"{{"name":"{name}","count":{count}}}"#);
        stats.check("GET /api/counter/NAME", http.get(&counter), 200, |a| {
            a.body == expect
        });
        // An order every ORDER_EVERY (see there).
        if Instant::now() >= next_order {
            next_order = Instant::now() + ORDER_EVERY;
            let order = format!(r#"{{"item": "{name}", "amount": {round}}}"#);
            let placed = stats.check(
                "POST /api/checkout",
                http.call("POST", "/api/checkout", &[], order.as_bytes()),
                202,
                |a| {
                    a.json().is_some_and(|json| json["id"].is_string())
                        && a.header("location").is_some()
                },
            );
            if let Some(placed) = placed {
                let id = placed.json().unwrap()["id"].as_str().unwrap().to_string();
                stats.check(
                    "GET /api/orders/ID",
                    http.get(&format!("/api/orders/{id}")),
                    200,
                    |a| {
                        a.json().is_some_and(|json| {
                            json["id"] == id.as_str()
                                && json["item"] == name.as_str()
                                && (json["status"] == "pending" || json["status"] == "paid")
                        })
                    },
                );
                let mut done = done.lock().unwrap();
                done.orders.push(id);
                done.watched_writes += 1;
            }
        }
        stats.check("GET /api/heartbeat", http.get("/api/heartbeat"), 200, |a| {
            a.json().is_some_and(|json| json["beats"].is_u64())
        });
        stats.check("GET /api/audit", http.get("/api/audit"), 200, |a| {
            a.json().is_some_and(|json| json["entries"].is_array())
        });
        if round.is_multiple_of(10) {
            // Deliberate errors: from a function, from the router, from a function's parser.
            stats.check(
                "GET /api/weather?city=nowhere",
                http.get("/api/weather?city=atlantis"),
                404,
                |a| a.body.contains("no weather for atlantis"),
            );
            stats.check(
                "DELETE /api/date",
                http.call("DELETE", "/api/date", &[], b""),
                405,
                |_| true,
            );
            stats.check("GET /api/nothing", http.get("/api/nothing"), 404, |_| true);
            stats.check(
                "POST /api/checkout (not JSON)",
                http.call("POST", "/api/checkout", &[], b"nonsense"),
                400,
                |_| true,
            );
            stats.check(
                "POST /api/heartbeat",
                http.call("POST", "/api/heartbeat", &[], b""),
                405,
                |_| true,
            );
        }
        thread::sleep(CLIENT_PAUSE);
    }
    done.lock().unwrap().counters.push((name, count));
}

/// Calls the Go example's routes, one at a time: each request starts Go's runtime (tens of
/// millions of fuel).
pub(super) fn go_client(addr: SocketAddr, stats: &Stats, stop: &AtomicBool) {
    let mut http = Http::new(addr);
    while !stop.load(Relaxed) {
        stats.check("GET /go/api/date", http.get("/go/api/date"), 200, |a| {
            a.header("access-control-allow-origin") == Some("*") && is_a_date(a)
        });
        stats.check(
            "GET /go/api/weather",
            http.get("/go/api/weather"),
            200,
            weather_is_whole,
        );
        stats.check(
            "OPTIONS /go/api/weather",
            http.call("OPTIONS", "/go/api/weather", &[], b""),
            204,
            |a| a.header("access-control-allow-methods") == Some("GET"),
        );
        pause(stop, Duration::from_millis(20));
    }
}
