#!/usr/bin/env bash
# Abusive clients at full size: 1,000 slow senders (a byte a second), 1,000 connections that
# never send, 64 clients pipelining without reading, 64 chunked bodies that never end, 16
# connections flooding tiny pipelined requests; each while a well-behaved client calls
# /api/date for 20 s. Prints the well-behaved client's p50/p99/max and the server's RSS per
# case (the target: p99 under 50 ms, RSS bounded). Not part of CI: the same tests run there at
# a smaller size (tests/e2e/abuse.rs).
#
#   tests/abuse.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Two sockets per abusive connection (client and server side, in two processes).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
functions/build.sh >/dev/null
WISP_ABUSE=full cargo test --release --quiet --test e2e abuse -- --nocapture --test-threads 1 2>&1 |
    grep -oE 'abuse:.*|test result.*|panicked.*|FAILED.*'
