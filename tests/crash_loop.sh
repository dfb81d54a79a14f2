#!/usr/bin/env bash
# The crash loop (issue 13): CYCLES times (default 1000), start the release `wisp` on one data
# folder, let clients do durable increments (the counter function), operator writes, topic
# publishes and deploys for 50-500 ms, `kill -9` it mid-request, restart, and check that every
# acknowledged write, increment, publish (delivered, once as a message) and deploy is there,
# and that nothing was applied twice. Prints the figures; a violation fails naming the cycle
# and the item, and keeps the data folder. Not part of CI (tests/e2e/crash_loop/ skips
# itself without WISP_CRASH_LOOP). WISP_CRASH_LOOP_SEED repeats the kill moments of a run.
#
#   tests/crash_loop.sh [CYCLES]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
functions/build.sh >/dev/null
WISP_CRASH_LOOP="${1:-1000}" cargo test --release --quiet --test e2e crash_loop -- \
    --nocapture --test-threads 1
