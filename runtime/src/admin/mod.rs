//! The admin API under `/_wisp/`: deploy, list, show, delete, versions, rollback, logs,
//! secrets, metrics, the device and the functions' recent history, keys, topics, dead letters
//! and the fleet. On a device in a fleet, deploys, rollbacks and deletes go through the fleet,
//! which applies them on every device. Every call needs `Authorization: Bearer TOKEN`; without
//! it, `401` and nothing else (not even whether a path exists). Over plain HTTP from another
//! machine, every call is `403` unless the server runs with `--insecure-admin`: the token would
//! cross the network in clear. Answers are JSON, errors `{"error": "..."}`.

mod deploy;
mod device;
mod kv;
mod secrets;
mod topics;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::config::FunctionConfig;
use crate::deployed::{DeployError, Deployed, Function};
use crate::fleet::Fleet;
use crate::http::{self, Body, Request, Response};
use crate::logs::LogLine;
use crate::metrics::{self, ServerFigures};
use crate::triggers::Context;

pub use device::Device;

/// What the admin API works on: the deployed set and the triggers' context, the token, and the
/// front end's counters.
pub struct Admin {
    pub ctx: Arc<Context>,
    pub token: Token,
    pub http_stats: Arc<http::Stats>,
    /// The fleet this device is in, if any.
    pub fleet: Option<Arc<Fleet>>,
    pub device: Device,
}

impl Admin {
    fn deployed(&self) -> &Deployed {
        &self.ctx.deployed
    }

    /// Runs `work` on a thread where blocking is fine (compiling, syncing files), with the
    /// deployed set.
    async fn blocking<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Deployed) -> R + Send + 'static,
    ) -> R {
        let deployed = self.ctx.deployed.clone();
        smol::unblock(move || work(&deployed)).await
    }

    /// Deploys a new version: on every device of the fleet, or here alone.
    async fn deploy(
        &self,
        config: FunctionConfig,
        wasm: Vec<u8>,
    ) -> Result<(Arc<Function>, bool), DeployError> {
        let (deployed, fleet) = (self.ctx.deployed.clone(), self.fleet.clone());
        smol::unblock(move || match fleet {
            Some(fleet) => fleet.deploy(config, wasm),
            None => deployed.deploy(config, &wasm),
        })
        .await
    }

    async fn rollback(&self, name: String, version: u32) -> Result<Arc<Function>, DeployError> {
        let (deployed, fleet) = (self.ctx.deployed.clone(), self.fleet.clone());
        smol::unblock(move || match fleet {
            Some(fleet) => fleet.rollback(&name, version),
            None => deployed.rollback(&name, version),
        })
        .await
    }

    async fn remove(&self, name: String) -> Result<(), DeployError> {
        let (deployed, fleet) = (self.ctx.deployed.clone(), self.fleet.clone());
        smol::unblock(move || match fleet {
            Some(fleet) => fleet.remove(&name),
            None => deployed.remove(&name),
        })
        .await
    }
}

const PREFIX: &str = "/_wisp/";

/// The admin token, and how it may travel. Compared in constant time.
#[derive(Clone)]
pub struct Token {
    secret: String,
    /// Taken over plain HTTP from other machines too (`--insecure-admin`).
    plain_from_afar: bool,
}

impl Token {
    pub fn new(token: String) -> Token {
        Token {
            secret: token,
            plain_from_afar: false,
        }
    }

    /// Takes the token over plain HTTP from any address, not only from this machine.
    pub fn insecure(self, plain_from_afar: bool) -> Token {
        Token {
            plain_from_afar,
            ..self
        }
    }

    /// Whether an admin call may come this way at all, before any token is looked at: over
    /// TLS, or from this machine, or anywhere with `--insecure-admin`.
    fn travels_safely(&self, request: &Request) -> bool {
        request.tls || self.plain_from_afar || is_local(request.peer.ip())
    }

    fn admits(&self, request: &Request) -> bool {
        let Some(given) = request.header("authorization") else {
            return false;
        };
        let Some(given) = given.strip_prefix(b"Bearer ") else {
            return false;
        };
        bool::from(given.trim_ascii().ct_eq(self.secret.as_bytes()))
    }
}

/// Whether `peer` is this machine as a local CLI reaches it: 127.0.0.1 or ::1 (also as an
/// IPv4-mapped IPv6 address). Every other address counts as another machine, the rest of
/// 127.0.0.0/8 included: a test on one machine stands for a remote client with 127.0.0.2.
pub fn is_local(peer: IpAddr) -> bool {
    match peer.to_canonical() {
        IpAddr::V4(ip) => ip == Ipv4Addr::LOCALHOST,
        IpAddr::V6(ip) => ip == Ipv6Addr::LOCALHOST,
    }
}

pub fn is_admin_path(path: &str) -> bool {
    path.starts_with(PREFIX) || path == "/_wisp"
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut text = serde_json::to_vec_pretty(body).expect("JSON values serialize");
    text.push(b'\n');
    Response::new(status)
        .header("Content-Type", "application/json")
        .body(text)
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": message.into() }))
}

fn deploy_error(e: DeployError) -> Response {
    let status = match &e {
        DeployError::Config(_) => 400,
        DeployError::Module(crate::engine::CompileError::MemoryTooLarge { .. }) => 413,
        DeployError::Module(_) => 400,
        DeployError::Conflict { .. } => 409,
        DeployError::NotFound(_) => 404,
        DeployError::Registry(_) | DeployError::Store(_) => 500,
        DeployError::FleetAway(_) => 503,
        DeployError::NotApplied(_) => 504,
    };
    let response = error(status, e.to_string());
    match status {
        503 => response.header("Retry-After", "5"),
        _ => response,
    }
}

/// What the API shows of a serving function version.
pub fn function_info(f: &Function) -> Value {
    let c = &f.config;
    let mut info = json!({
        "name": c.name,
        "version": f.version,
        "hash": f.hash,
        "size": f.module.size(),
        "routes": c.routes,
        "methods": c.methods,
        "limits": c.limits,
        "env": c.env,
        "secrets": f.secret_names().collect::<Vec<_>>(),
        "stores": c.private_stores(),
        "shared_stores": c.shared_stores,
        "topics": c.topics,
        "publish": c.publish,
        "allowed_hosts": c.allowed_hosts,
        "timers": c.timers,
        "watch": c.watch,
        "deployed_at": f.deployed_at,
    });
    if let Some(delivery) = &c.async_calls {
        info["async"] = json!(delivery);
    }
    if let Some(cors) = &c.cors {
        info["cors"] = json!(cors);
    }
    info
}

/// Answers an admin request.
pub async fn handle(admin: &Admin, request: Request) -> Response {
    // Refused whatever the token: answering 401 would only invite the client to send it.
    if !admin.token.travels_safely(&request) {
        return error(
            403,
            "the admin API takes no token over plain HTTP from another machine: use https:// \
             (the server's --listen-tls port), or start the server with --insecure-admin",
        );
    }
    if !admin.token.admits(&request) {
        return error(
            401,
            "missing or wrong admin token (Authorization: Bearer TOKEN)",
        )
        .header("WWW-Authenticate", "Bearer realm=\"wisp\"");
    }
    let rest = request.path.strip_prefix(PREFIX).unwrap_or("").to_string();
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", ["metrics"]) => metrics(admin),
        ("GET", ["device"]) => device::device(admin),
        ("GET", ["history"]) => device::history(admin, None, &request),
        ("GET", ["functions", name, "history"]) => device::history(admin, Some(name), &request),
        (_, ["kv", rest @ ..]) => {
            let rest: Vec<&str> = rest.to_vec();
            kv::handle(admin, request, &rest).await
        }
        ("GET", ["functions"]) => {
            let list: Vec<Value> = admin
                .deployed()
                .functions()
                .iter()
                .map(|f| function_info(f))
                .collect();
            json_response(200, &json!({ "functions": list }))
        }
        ("PUT", ["functions", name]) => deploy::deploy(admin, name, request).await,
        ("GET", ["functions", name]) => match admin.deployed().get(name) {
            Some(f) => json_response(200, &function_info(&f)),
            None => error(404, format!("no function `{name}`")),
        },
        ("GET", ["fleet"]) => fleet(admin).await,
        ("DELETE", ["functions", name]) => {
            let name = name.to_string();
            match admin.remove(name.clone()).await {
                Ok(()) => json_response(200, &json!({ "deleted": name })),
                Err(e) => deploy_error(e),
            }
        }
        ("GET", ["functions", name, "versions"]) => versions(admin, name).await,
        ("POST", ["functions", name, "rollback"]) => rollback(admin, name, &request).await,
        ("GET", ["functions", name, "logs"]) => logs(admin, name, &request),
        (_, ["functions", name, "secrets", rest @ ..]) => {
            let (name, rest) = (name.to_string(), rest.to_vec());
            secrets::handle(admin, request, &name, &rest).await
        }
        (_, ["topics", ..] | ["dead-letters", ..]) => {
            topics::handle(admin, request, &segments).await
        }
        (
            _,
            ["metrics"]
            | ["device"]
            | ["history"]
            | ["fleet"]
            | ["functions"]
            | ["functions", _]
            | ["functions", _, _],
        ) => error(405, format!("{method} is not allowed on {}", request.path)),
        _ => error(404, format!("no admin endpoint {}", request.path)),
    }
}

fn metrics(admin: &Admin) -> Response {
    let http = &admin.http_stats;
    let functions = admin.deployed().functions();
    let figures = ServerFigures {
        open_connections: http.open_connections.load(Relaxed),
        connections: http.connections.load(Relaxed),
        requests: http.requests.load(Relaxed),
        rejected: http.rejected.load(Relaxed),
        queued: admin.ctx.invoker.scheduler().queued(),
        functions: functions.len(),
    };
    let stats: Vec<_> = functions
        .iter()
        .map(|f| (f.name().to_string(), f.stats.as_ref()))
        .collect();
    let mut text = metrics::render(&figures, &stats);
    text.push_str(&topics::metrics(admin));
    if let Some(fleet) = &admin.fleet {
        text.push_str(&metrics::render_fleet(&fleet.figures()));
    }
    Response::new(200)
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(text)
}

async fn versions(admin: &Admin, name: &str) -> Response {
    let lookup = admin.blocking({
        let name = name.to_string();
        move |s| s.record(&name)
    });
    match lookup.await {
        Ok(Some(record)) => {
            let versions: Vec<Value> = record
                .versions
                .iter()
                .map(|v| {
                    json!({
                        "version": v.version,
                        "hash": v.hash,
                        "size": v.size,
                        "deployed_at": v.deployed_at,
                        "active": v.version == record.active,
                    })
                })
                .collect();
            json_response(
                200,
                &json!({ "name": name, "active": record.active, "versions": versions }),
            )
        }
        Ok(None) => error(404, format!("no function `{name}`")),
        Err(e) => error(500, e.to_string()),
    }
}

/// The value of query parameter `key`, if given.
fn query_value<'a>(request: &'a Request, key: &str) -> Option<&'a str> {
    request.query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

async fn rollback(admin: &Admin, name: &str, request: &Request) -> Response {
    let Some(version) = query_value(request, "version").and_then(|v| v.parse::<u32>().ok()) else {
        return error(400, "rollback needs ?version=N");
    };
    match admin.rollback(name.to_string(), version).await {
        Ok(f) => json_response(200, &function_info(&f)),
        Err(e) => deploy_error(e),
    }
}

/// `GET /_wisp/fleet`: the fleet's devices, as [`Fleet::devices`] lists them.
async fn fleet(admin: &Admin) -> Response {
    let Some(fleet) = admin.fleet.clone() else {
        return error(
            404,
            "this device is in no fleet (start it with --redis redis://HOST:PORT/DB)",
        );
    };
    let devices = smol::unblock(move || fleet.devices()).await;
    json_response(200, &devices)
}

fn logs(admin: &Admin, name: &str, request: &Request) -> Response {
    let Some(stats) = admin.deployed().stats(name) else {
        return error(404, format!("no function `{name}`"));
    };
    let response = Response::new(200).header("Content-Type", "text/plain; charset=utf-8");
    let follow = request
        .query
        .split('&')
        .any(|p| p == "follow" || p.starts_with("follow="));
    if !follow {
        let text: String = stats.log.recent().iter().map(LogLine::render).collect();
        return response.body(text);
    }
    Response {
        body: Body::Stream(stats.log.follow()),
        ..response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_addresses_a_local_cli_uses_are_local() {
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        // The rest of 127.0.0.0/8 too: tests stand for another machine with 127.0.0.2.
        for afar in [
            "127.0.0.2",
            "127.1.2.3",
            "10.0.0.1",
            "::",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_local(afar.parse().unwrap()), "{afar}");
        }
    }
}
