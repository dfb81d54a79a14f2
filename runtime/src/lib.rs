//! Wisp: a serverless runtime for edge devices.
//!
//! One binary serves WebAssembly functions over HTTP. Each request gets a fresh, sandboxed
//! instance of its function's module; functions follow the WAGI contract (a WASI command
//! module: request on stdin and in CGI environment variables, response on stdout).
//!
//! # How the house is laid out
//!
//! A request reads as a straight line through the modules:
//!
//! - [`http`]: accept, parse, respond. Keep-alive, pipelining, chunked bodies,
//!   `100-continue`, limits on heads, bodies and slow clients, graceful shutdown. Knows
//!   nothing of wasm.
//! - [`router`]: the route table, path and method to function, and per-route CORS.
//! - [`wagi`]: the request as a CGI invocation, the CGI output as a response.
//! - [`engine`]: compiled modules (one wasmi engine per version), the WASI preview1 subset,
//!   the `wisp` imports (key-value store, `publish`), per-invocation limits, and the worker
//!   pool that runs invocations in fuel slices. Knows nothing of HTTP.
//! - [`invoke`]: the one invocation path every trigger shares: run, read the output, commit
//!   what was published with the trigger's acknowledgement, make it durable, log and count.
//! - [`triggers`]: each kind of event as an invocation: HTTP routes (and `Prefer:
//!   respond-async`), the dispatchers of durable queues (topics, key-value watches,
//!   asynchronous calls), timers.
//! - [`service`]: the handler behind the front end: health, call results, admin, routes.
//!
//! Beside them: [`deployed`] (the deployed set and the operations that change it), [`admin`]
//! (the `/_wisp/` API: deploys, versions, logs, secrets, metrics, keys, topics, dead letters),
//! [`registry`] (functions, versions and secrets in the data folder, crash-safe), [`store`]
//! (the backend: the key-value shim and the durable queues, one trait each, with two backends:
//! the embedded redb one with group commit, and the fleet's Redis, where the queues are
//! streams that the devices claim from; namespaces), [`topics`] (which queues each topic feeds, and the
//! depth caps), [`metrics`] (Prometheus text), [`config`] (function configuration and the
//! `wisp.json` manifest), [`logs`] (each function's recent log lines), [`server`] (start and
//! stop), [`cli`] (the commands), [`board`] (server defaults sized for each class of device),
//! [`fleet`] (devices joined through Redis: every deploy recorded in a log there and applied by
//! every device, heartbeats, the list of devices), [`tls`] (the device's certificate for its
//! HTTPS listener, and the fingerprints the CLI pins), [`history`] (each function's last 15
//! minutes, for the dashboard), [`ui`] (the dashboard's page, built into the binary).

pub mod admin;
pub mod board;
pub mod cli;
pub mod config;
pub mod deployed;
pub mod engine;
pub mod fleet;
pub mod history;
pub mod http;
pub mod invoke;
pub mod logs;
pub mod metrics;
pub mod outbound;
pub mod registry;
pub mod router;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
pub mod topics;
pub mod triggers;
pub mod ui;
pub mod wagi;
