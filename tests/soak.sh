#!/usr/bin/env bash
# The soak (issue 13): SECONDS (default 600) of mixed load on the release `wisp` serving every
# example of functions/wisp.json: clients calling every route (Rust, C, Go), a deploy of a new
# version every 3 s while it is called, key-value writes through functions and the admin API,
# messages published to a subscribed function, a timer every second and a key-value watch.
# Every answer is checked; prints a table of the server's RSS per minute with the requests and
# errors, the growth from minute 2 to the end, and what the end checks found (every order paid,
# every watched change seen, the timer's runs). Fails on any unexpected error. Not part of CI:
# without WISP_SOAK_SECONDS, tests/e2e/soak/ runs the same load for 4 s.
# WISP_SOAK_BINARY=PATH soaks another build (the static musl binary of boards/build.sh, say).
#
#   tests/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
functions/build.sh >/dev/null
# The soak's lines, and a failed assertion's message (the lines after "panicked").
WISP_SOAK_SECONDS="${1:-600}" cargo test --release --quiet --test e2e soak -- --nocapture \
    --test-threads 1 2>&1 |
    awk '/^soak:|test result|FAILED|^error/ { print; fflush(); next }
         /panicked/ { print; fflush(); after = 6; next }
         after-- > 0 { print; fflush() }'
