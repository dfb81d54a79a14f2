//! The HTTP trigger: a request on a function's route becomes a WAGI invocation, its CGI output
//! the response. With `Prefer: respond-async` (RFC 7240) the request is instead stored durably
//! in the function's queue of calls and answered `202 Accepted` at once, with a `Location`
//! where its result can be read (`/_wisp/async/{id}`, no token: the id is 128 random bits).

use std::sync::Arc;

use serde_json::json;

use super::Context;
use crate::deployed::{Function, Table};
use crate::engine::Busy;
use crate::http::{Request, Response};
use crate::invoke::Output;
use crate::router::{Lookup, Route};
use crate::store::queues::{Body, CallResult, Push, QueueKey, QueueOp, Source};
use crate::store::{KvError, unix_ms};
use crate::wagi::{self, RouteInfo};

/// Where call results are read.
pub const RESULTS_PREFIX: &str = "/_wisp/async/";

/// Answers a request for a function's route.
pub async fn handle(ctx: &Context, request: Request) -> Response {
    let table = ctx.deployed.routes();
    invoke(ctx, request, &table).await
}

async fn invoke(ctx: &Context, request: Request, table: &Table) -> Response {
    let origin = request
        .header("origin")
        .map(|o| String::from_utf8_lossy(o).into_owned());
    let (route, split) = match table.lookup(&request.method, &request.path) {
        Lookup::NotFound => {
            return Response::text(404, format!("no route for {}\n", request.path));
        }
        Lookup::MethodNotAllowed(m, allow) => {
            if request.method == "OPTIONS" && m.route.cors.is_some() {
                return preflight(&request, m.route, origin.as_deref());
            }
            return Response::text(405, format!("{} is not allowed here\n", request.method))
                .header("Allow", allow);
        }
        Lookup::Found(m) => {
            if is_preflight(&request) && m.route.cors.is_some() {
                return preflight(&request, m.route, origin.as_deref());
            }
            (m.route, m.split)
        }
    };
    let function = &route.target;
    let info = RouteInfo {
        function: function.name(),
        pattern: &route.pattern,
        split,
    };
    let asynchronous = wants_async(&request);
    let invocation = wagi::invocation(request, &info, &function.env);
    let mut response = if asynchronous {
        accept(ctx, function, invocation).await
    } else {
        match ctx
            .invoker
            .invoke(function, invocation, Output::Response, None)
            .await
        {
            Ok(invoked) => invoked.response,
            Err(Busy) => busy(),
        }
    };
    if let Some(cors) = &route.cors {
        cors.response_headers(origin.as_deref(), &mut response.headers);
    }
    response
}

fn busy() -> Response {
    Response::text(503, "all workers are busy; try again shortly\n").header("Retry-After", "1")
}

/// Whether the client asked for an asynchronous answer (`Prefer: respond-async`, possibly
/// among other preferences).
fn wants_async(request: &Request) -> bool {
    request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("prefer"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .any(|p| {
            let token = p.split(|&b| b == b';').next().unwrap_or_default();
            token.trim_ascii().eq_ignore_ascii_case(b"respond-async")
        })
}

/// Stores the call durably and answers `202` with where its result will be.
async fn accept(
    ctx: &Context,
    function: &Arc<Function>,
    invocation: crate::engine::Invocation,
) -> Response {
    let queue = QueueKey::new(function.name(), Source::Async);
    if ctx.backend.counts(&queue).pending >= ctx.topics.cap() {
        return Response::text(
            503,
            "too many asynchronous calls are waiting; try again later\n",
        )
        .header("Retry-After", "1");
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return Response::text(500, "no randomness for a call id\n");
    }
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let ops = vec![
        QueueOp::SetResult {
            id: id.clone(),
            result: CallResult {
                function: function.name().to_string(),
                accepted_at: unix_ms(),
                done: None,
            },
        },
        QueueOp::Push(Push {
            queue,
            id: id.clone(),
            body: Body::Call {
                args: invocation.args,
                env: invocation.env,
            },
            payload: invocation.stdin.into(),
        }),
    ];
    let stored = match ctx.backend.apply(ops).get().await {
        Ok(()) => ctx.backend.sync().get().await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(()) => {}
        // Redis away, or the queue filled meanwhile (on another device): nothing was stored.
        Err(e @ (KvError::QueueFull | KvError::Unavailable(_))) => {
            return Response::text(503, format!("cannot store the call: {e}\n"))
                .header("Retry-After", "1");
        }
        Err(e) => return Response::text(500, format!("cannot store the call: {e}\n")),
    }
    ctx.call_queued();
    let location = format!("{RESULTS_PREFIX}{id}");
    let body = json!({ "id": id, "state": "queued", "location": location });
    Response::new(202)
        .header("Content-Type", "application/json")
        .header("Location", location)
        .header("Preference-Applied", "respond-async")
        .body(format!("{body}\n"))
}

/// `GET /_wisp/async/{id}`: while the call waits or runs, `202` with its state; once done,
/// the function's response as it gave it. Every answer says the state in `Wisp-Async-State`.
pub async fn result(ctx: &Context, request: &Request) -> Response {
    let id = request.path.strip_prefix(RESULTS_PREFIX).unwrap_or("");
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "use GET\n").header("Allow", "GET, HEAD");
    }
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Response::text(404, "no such call\n");
    }
    let backend = ctx.backend.clone();
    let lookup = {
        let id = id.to_string();
        smol::unblock(move || backend.result(&id)).await
    };
    let result = match lookup {
        Ok(Some(result)) => result,
        Ok(None) => return Response::text(404, "no such call (results are kept for an hour)\n"),
        Err(e @ KvError::Unavailable(_)) => {
            return Response::text(503, format!("cannot read the result: {e}\n"))
                .header("Retry-After", "1");
        }
        Err(e) => return Response::text(500, format!("cannot read the result: {e}\n")),
    };
    match result.done {
        Some(done) => {
            let mut response = Response::new(done.status).body(done.body);
            response.headers = done.headers;
            response.header("Wisp-Async-State", "done")
        }
        None => {
            let state = if ctx.call_running(id) {
                "running"
            } else {
                "queued"
            };
            let body = json!({ "id": id, "state": state, "function": result.function });
            Response::new(202)
                .header("Content-Type", "application/json")
                .header("Wisp-Async-State", state)
                .header("Retry-After", "1")
                .body(format!("{body}\n"))
        }
    }
}

fn is_preflight(request: &Request) -> bool {
    request.method == "OPTIONS" && request.header("access-control-request-method").is_some()
}

fn preflight(request: &Request, route: &Route<Arc<Function>>, origin: Option<&str>) -> Response {
    let cors = route.cors.as_ref().expect("preflight only on CORS routes");
    let asked = request
        .header("access-control-request-headers")
        .map(String::from_utf8_lossy);
    let mut response = Response::new(204);
    response.headers = cors.preflight_headers(origin, &route.methods, asked.as_deref());
    response
}
