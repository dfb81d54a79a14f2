//! End-to-end tests: each starts the real `wisp` binary on an ephemeral loopback port, serves
//! modules built from `functions/`, and talks to it over sockets.

mod cli;
mod examples;
mod limits;
mod sdk;
mod support;
mod wire;
