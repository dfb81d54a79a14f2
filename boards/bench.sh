#!/usr/bin/env bash
# Compares the requests/s of wisp binaries serving `GET /api/date` (a fresh wasm instance per
# request), the binaries taking turns so that the machine's noise falls on all of them alike.
#
#   boards/bench.sh [-r ROUNDS] [-d SECONDS] BINARY...
#
# Each round starts each binary in turn with `wisp up functions/wisp.json` on a free loopback
# port and a fresh data folder, warms it up, runs `wrk -t1 -c32`, prints one line, stops it.
# At the end, each binary's median requests/s, as a share of the first binary's. Needs wrk and
# the example modules (functions/build.sh). Loopback only.
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
        rm -rf "$work/data"
        : >"$work/out" # empty before the server starts: no stale address to read
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
        # The server's own CPU time per request too (utime + stime, in clock ticks): it depends
        # less than requests/s on what else the machine is doing.
        cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        wrk -t1 -c32 -d"${seconds}s" --latency "$url/api/date" >"$work/wrk"
        cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        rps=$(awk -v ticks=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" '
            /requests in/ {n=$1} /^Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
            /Non-2xx/ {bad=$NF}
            END {printf "%10.0f req/s  p50 %s  p99 %s  server CPU %.1f us/request%s", r, p50, p99,
                 n ? ticks / hz * 1e6 / n : 0, bad ? "  NON-2xx " bad : ""}' "$work/wrk")
        kill "$pid"
        wait "$pid" || true
        pid=
        printf 'round %d  %-60s %s\n' "$round" "$bin" "$rps"
        echo "$bin $(awk '{print $1}' <<<"$rps")" >>"$work/results"
    done
done

# The median of each binary's rounds, and how it compares with the first binary's.
first=
for bin in "$@"; do
    median=$(awk -v b="$bin" '$1 == b {print $2}' "$work/results" | sort -g |
        awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    first=${first:-$median}
    printf 'median   %-60s %10.0f req/s  %5.1f%% of the first\n' "$bin" "$median" \
        "$(awk -v m="$median" -v f="$first" 'BEGIN {print 100 * m / f}')"
done
