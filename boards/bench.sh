#!/usr/bin/env bash
# Compares the requests/s of wisp binaries serving `GET /api/date` (a fresh wasm instance per
# request), the binaries taking turns so that the machine's noise falls on all of them alike.
#
#   boards/bench.sh [-r ROUNDS] [-d SECONDS] BINARY...
#
# Each round starts each binary in turn with `wisp up functions/wisp.json` on a free loopback
# port and a fresh data folder, warms it up, runs `wrk -t1 -c32`, prints one line, stops it.
# Needs wrk and the example modules (functions/build.sh). Loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=2 seconds=10
while getopts r:d: opt; do
    case $opt in
    r) rounds=$OPTARG ;;
    d) seconds=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
(($#)) || { echo "usage: boards/bench.sh [-r ROUNDS] [-d SECONDS] BINARY..." >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench: needs wrk (apt-get install wrk)" >&2; exit 2; }
[[ -f functions/target/wasm32-wasip1/release/date.wasm ]] || functions/build.sh

work=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

for round in $(seq "$rounds"); do
    for bin in "$@"; do
        rm -rf "$work/data" "$work/out"
        "$bin" up --listen 127.0.0.1:0 --data "$work/data" functions/wisp.json \
            >"$work/out" 2>"$work/err" &
        pid=$!
        url=
        for _ in $(seq 100); do
            url=$(sed -n 's|^wisp: listening on \(http://.*\)$|\1|p' "$work/out")
            [[ -n $url ]] && break
            sleep 0.1
        done
        [[ -n $url ]] || { cat "$work/err" >&2; exit 1; }
        wrk -t1 -c32 -d2s "$url/api/date" >/dev/null # warm up
        rps=$(wrk -t1 -c32 -d"${seconds}s" --latency "$url/api/date" |
            awk '/^Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
                 /Non-2xx/ {bad=$NF} END {printf "%10.0f req/s  p50 %s  p99 %s%s", r, p50, p99,
                 bad ? "  NON-2xx " bad : ""}')
        kill "$pid"
        wait "$pid" || true
        pid=
        printf 'round %d  %-60s %s\n' "$round" "$bin" "$rps"
    done
done
