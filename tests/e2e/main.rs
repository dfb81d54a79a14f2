//! End-to-end tests: each starts the real `wisp` binary on an ephemeral loopback port, serves
//! modules built from `functions/`, and talks to it over sockets.

mod abuse;
mod admin_cli;
mod boards;
mod cli;
mod crash_loop;
mod dashboard;
mod deploy;
mod examples;
mod fleet;
mod fleet_events;
mod go;
mod kv;
mod kv_cli;
mod limits;
mod memory;
mod outbound;
mod redis_server;
mod sdk;
mod secrets;
mod security;
mod soak;
mod support;
mod timers;
mod tls;
mod topics;
mod upstream;
mod watch;
mod wire;
