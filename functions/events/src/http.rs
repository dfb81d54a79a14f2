//! The HTTP routes: read the record, publish, and write keys (see main.rs for the list).

use wisp_sdk::kv::{KvError, Store};
use wisp_sdk::topics;
use wisp_sdk::{Request, Response};

/// The most messages `storm` publishes when the host never says stop.
const MOST_STORM: usize = 100_000;

pub fn handle(req: &Request) -> Response {
    match req.path().rsplit('/').next().unwrap_or("") {
        "log" => log(),
        "publish" => {
            let n = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(1);
            then(req, publish(req, n))
        }
        "storm" => Response::text(200, publish(req, MOST_STORM)),
        "set" => {
            let value = match size(req) {
                Some(size) => vec![b'x'; size],
                None => req.query("value").unwrap_or_default().into_bytes(),
            };
            let set = store(req).set(key(req), value);
            then(req, code(set.map(drop)))
        }
        "delete" => then(req, code(store(req).delete(key(req)).map(drop))),
        "get" => match store(req).get(key(req)) {
            Ok(Some(value)) => Response::new(200).body([b"value=".as_slice(), &value].concat()),
            Ok(None) => Response::text(200, "missing"),
            Err(e) => Response::text(200, code(Err(e))),
        },
        _ => Response::not_found(),
    }
}

/// Every recorded line, in order: the keys `event/<10 digits>` sort by number.
fn log() -> Response {
    let store = Store::default_store();
    let mut body = Vec::new();
    for key in store.keys("event/") {
        let line = key.and_then(|key| store.get(key));
        match line {
            Ok(Some(line)) => {
                body.extend_from_slice(&line);
                body.push(b'\n');
            }
            // Deleted since it was listed.
            Ok(None) => {}
            Err(e) => return Response::text(500, code(Err(e))),
        }
    }
    Response::new(200).body(body)
}

/// Publishes up to `most` messages on `topic`, stopping at the first error:
/// `published=<K> code=<C>`.
fn publish(req: &Request, most: usize) -> String {
    let topic = req.query("topic").unwrap_or_default();
    let base = match size(req) {
        Some(size) => vec![b'x'; size],
        None => req
            .query("payload")
            .unwrap_or_else(|| "hello".into())
            .into_bytes(),
    };
    let stamp = req.query("stamp").is_some();
    let mut payload = base.clone();
    let mut published = 0;
    let mut code = 0;
    while published < most {
        if stamp {
            // For the benchmarks: when it was published, for the subscriber's latency.
            payload.clone_from(&base);
            payload.extend_from_slice(format!(" stamp={}", crate::now_us()).as_bytes());
        }
        match topics::publish(&topic, &payload) {
            Ok(()) => published += 1,
            Err(e) => {
                code = e.code();
                break;
            }
        }
    }
    format!("published={published} code={code}")
}

/// Answers `body` as `then` says: 200 (`ok`, the default), 500 (`fail`), or a panic (`trap`).
fn then(req: &Request, body: String) -> Response {
    match req.query("then").as_deref() {
        Some("fail") => Response::text(500, body),
        Some("trap") => panic!("events: trap after {body}, as the query asks"),
        _ => Response::text(200, body),
    }
}

fn code(result: Result<(), KvError>) -> String {
    format!("code={}", result.err().map_or(0, |e| e.code()))
}

fn store(req: &Request) -> Store {
    Store::open(req.query("store").unwrap_or_else(|| "default".into()))
}

fn key(req: &Request) -> String {
    req.query("key").unwrap_or_default()
}

fn size(req: &Request) -> Option<usize> {
    req.query("size").and_then(|size| size.parse().ok())
}
