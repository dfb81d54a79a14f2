//! `/_wisp/kv/STORE/NAMESPACE[/KEY]`: the operator's view of the key-value store. NAMESPACE is
//! a function's name, or `_shared` for the store's shared namespace; KEY is percent-encoded.

use serde_json::json;

use super::Admin;
use super::{error, json_response, query_value};
use crate::config::valid_name;
use crate::http::{Request, Response};
use crate::store::{KvError, Scoped};
use crate::wagi::percent_decode;

const SHARED: &str = "_shared";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

fn kv_error(e: KvError) -> Response {
    match e {
        KvError::Failed(_) => error(500, e.to_string()),
        // A watcher behind, or the fleet's Redis away (a write may or may not have happened):
        // try again shortly.
        KvError::QueueFull | KvError::Unavailable(_) => {
            error(503, e.to_string()).header("Retry-After", "1")
        }
        KvError::NoSuchStore
        | KvError::InvalidKey
        | KvError::ValueTooLarge
        | KvError::NotANumber => error(400, e.to_string()),
    }
}

/// Answers `METHOD /_wisp/kv/{segments}`.
pub async fn handle(admin: &Admin, request: Request, segments: &[&str]) -> Response {
    let (store, namespace, key) = match segments {
        [store, namespace] => (*store, *namespace, None),
        [store, namespace, key] => (*store, *namespace, Some(percent_decode(key, false))),
        _ => return error(404, "use /_wisp/kv/STORE/NAMESPACE[/KEY]"),
    };
    let owner = (namespace != SHARED).then_some(namespace);
    if !valid_name(store) || owner.is_some_and(|o| !valid_name(o)) {
        return error(
            400,
            format!("no store `{store}` with namespace `{namespace}`"),
        );
    }
    let scope = admin.deployed().kv_namespace(store, owner);
    let place = format!("{store}/{namespace}");
    let method = request.method.clone();
    let op = move || match (method.as_str(), key) {
        ("GET", None) => list(&scope, &request),
        ("GET", Some(key)) => match scope.get(key.as_bytes()).wait() {
            Ok(Some(value)) => Response::new(200)
                .header("Content-Type", "application/octet-stream")
                .body(value),
            Ok(None) => error(404, format!("no key `{key}` in {place}")),
            Err(e) => kv_error(e),
        },
        ("PUT", Some(key)) => {
            match scope
                .set(key.as_bytes(), &request.body)
                .wait()
                .and_then(|()| scope.sync().wait())
            {
                Ok(()) => Response::new(204),
                Err(e) => kv_error(e),
            }
        }
        ("DELETE", Some(key)) => match scope.delete(key.as_bytes()).wait().and_then(|d| {
            scope.sync().wait()?;
            Ok(d)
        }) {
            Ok(true) => Response::new(204),
            Ok(false) => error(404, format!("no key `{key}` in {place}")),
            Err(e) => kv_error(e),
        },
        (method, _) => error(405, format!("{method} is not allowed on {}", request.path)),
    };
    smol::unblock(op).await
}

fn list(scope: &Scoped, request: &Request) -> Response {
    let decoded = |k| query_value(request, k).map(|v| percent_decode(v, true));
    let prefix = decoded("prefix").unwrap_or_default();
    let after = decoded("after");
    let limit = match decoded("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => return error(400, format!("limit is 1 to {MAX_LIMIT}")),
    };
    match scope
        .list(
            prefix.as_bytes(),
            after.as_deref().map(str::as_bytes),
            limit,
        )
        .wait()
    {
        Ok(keys) => {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into())
                .collect();
            let next = (keys.len() == limit)
                .then(|| keys.last().cloned())
                .flatten();
            json_response(200, &json!({ "keys": keys, "next": next }))
        }
        Err(e) => kv_error(e),
    }
}
