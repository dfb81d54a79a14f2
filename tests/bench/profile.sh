#!/usr/bin/env bash
# Profiles the server's hot path under load: builds wisp with symbols (target/bench-prof), serves
# one route, drives it with wrk -c64 and records it with perf, then prints where the CPU goes
# (by thread, by kind of work, top symbols) and the syscalls, context switches and page faults
# per request.
#
#   tests/bench/profile.sh [trivial|date|lean|floor|healthz] [SECONDS]
#   TARGET=x86_64-unknown-linux-musl tests/bench/profile.sh ...   # the static binary
#
# trivial and date are the SDK examples, lean is tests/bench/cpu's probe-lean (the same answer
# without the SDK), floor a one-page WAT module that only writes its answer (the runtime's own
# cost per invocation), healthz the native route. Needs perf and wrk, and the modules that
# tests/bench/run.sh builds (run it once). The perf data stays in target/bench-prof/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
route=${1:-trivial}
seconds=${2:-5}
say() { printf '\033[1mprofile:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
command -v perf >/dev/null || die "needs perf"
command -v wrk >/dev/null || die "needs wrk"

modules=$root/functions/target/wasm32-wasip1/release
case $route in
trivial | date) module=$modules/$route.wasm ;;
lean) module=$root/target/bench-guest/probes/wasm32-wasip1/release/probe-lean.wasm ;;
floor)
    module=$root/target/bench-prof/wat-1page.wasm
    mkdir -p target/bench-prof
    cargo bench --quiet --bench invoke --target-dir target/bench -- --emit "$root/target/bench-prof" >/dev/null
    ;;
healthz) module= ;;
*) die "unknown route $route (trivial, date, lean, floor or healthz)" ;;
esac
[[ -z $module || -f $module ]] || die "no $module (run tests/bench/run.sh once)"

say "building wisp with symbols into target/bench-prof"
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --quiet --target-dir target/bench-prof ${TARGET:+--target "$TARGET"}
bin=$root/target/bench-prof/${TARGET:+$TARGET/}release/wisp

work=$(mktemp -d "${TMPDIR:-/tmp}/wisp-profile.XXXXXX")
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
WISP_TOKEN=$token "$bin" serve --listen 127.0.0.1:0 --data "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
url=
for _ in $(seq 100); do
    url=$(sed -n 's|^wisp: listening on \(http://.*\)$|\1|p' "$work/out")
    [[ -n $url ]] && break
    sleep 0.05
done
[[ -n $url ]] || { cat "$work/err" >&2; die "wisp did not start"; }
path=/healthz
if [[ -n $module ]]; then
    path=/profiled
    curl -sSf -o /dev/null -T "$module" -H 'Expect:' -H "Authorization: Bearer $token" \
        "$url/_wisp/functions/profiled?route=/profiled&method=GET" || die "deploy failed"
fi

wrk -t1 -c64 -d1s "$url$path" >/dev/null
out=$root/target/bench-prof/perf-$route.data
say "recording ${seconds}s of wrk -t1 -c64 on $path into ${out#"$root"/}"
perf record -F 1999 -g -p "$pid" -o "$out" -- sleep "$seconds" 2>/dev/null &
rec=$!
wrk -t1 -c64 -d"${seconds}s" "$url$path" >"$work/wrk1"
wait "$rec" || true
say "counting syscalls, context switches and page faults"
perf stat -e raw_syscalls:sys_enter,context-switches,page-faults,task-clock -p "$pid" \
    -o "$work/stat" -- sleep "$seconds" 2>/dev/null &
rec=$!
wrk -t1 -c64 -d"${seconds}s" "$url$path" >"$work/wrk2"
wait "$rec" || true

echo "## $route: $(awk '/Requests\/sec/ {print $2}' "$work/wrk1") requests/s while recording"
echo
echo "### Per request (perf stat, $(awk '/requests in/ {print $1}' "$work/wrk2") requests)"
awk -v n="$(awk '/requests in/ {print $1}' "$work/wrk2")" '
    /raw_syscalls|context-switches|page-faults/ {gsub(",", "", $1); printf "%-26s %8.2f\n", $2, $1 / n}
    /task-clock/ {gsub(",", "", $1); printf "%-26s %8.1f us\n", "server CPU", $1 * 1000 / n}' "$work/stat"
echo
echo "### By thread"
perf report -i "$out" --no-children --sort comm --stdio -g none 2>/dev/null | grep '%' | head -6
echo
echo "### By kind of work"
perf report -i "$out" --no-children --sort symbol --stdio -g none 2>/dev/null | grep '%' | awk '
    {p = $1; sub("%", "", p)
     if ($0 ~ /executor::handler::exec::|consume_fuel/) k = "guest code (wasmi executor)"
     else if ($0 ~ /\[k\] (finish_task_switch|_raw_spin_unlock_irq|__schedule|schedule)/) k = "kernel: scheduling, wake-ups"
     else if ($0 ~ /\[k\]/) k = "kernel: other (syscalls, TCP)"
     else if ($0 ~ /memset/) k = "memset (zeroing linear memory)"
     else if ($0 ~ /memmove|memcpy/) k = "memcpy"
     else if ($0 ~ /malloc|free|realloc|_int_|unlink_chunk|consolidate|tcache|dlmalloc/) k = "host malloc/free"
     else if ($0 ~ /wasmi::/) k = "wasmi: instantiate, store, linker"
     else if ($0 ~ /wisp::http|httparse|async_|polling|concurrent_queue|event_listener|smol/) k = "HTTP front end, executor"
     else if ($0 ~ /wisp::/) k = "wisp: other"
     else k = "other"
     t[k] += p}
    END {for (k in t) printf "%6.2f%%  %s\n", t[k], k}' | sort -rn
echo
echo "### Top symbols"
perf report -i "$out" --no-children --sort symbol --stdio -g none 2>/dev/null | grep '%' | head -25 |
    cut -c1-120
say "more: perf report -i ${out#"$root"/}"
