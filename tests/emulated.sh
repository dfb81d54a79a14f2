#!/usr/bin/env bash
# Emulated devices: the ARM binaries through a real deploy-and-serve cycle under qemu-user.
#
#   tests/emulated.sh [TARGET...]
#   # default: aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf
#
# Builds the static binaries once with the `emulated` cargo profile (boards/build.sh, which also
# checks that each is statically linked), then for each target, on loopback only: checks that a
# panic unwinds and is caught (as a connection's is), starts `wisp serve` under qemu with a
# fresh data folder and a board profile, deploys the example functions with the CLI (the host
# build as client), calls them, stops the server with SIGTERM, starts it again on the same data
# folder, and checks that the functions are still there and answer, this time also through the
# ARM binary's own CLI. qemu emulates the oldest CPU of each binary's boards (QEMU_CPU), so an
# instruction that CPU lacks fails the test: an ARM1176 (Pi 1, Zero) for the ARMv6 binary, a
# Cortex-A7 (Pi 2) for the ARMv7 one, a Cortex-A53 (Pi 3, Zero 2 W) for the 64-bit one. Needs
# qemu-user-static and file (.ci/run installs them). Set CARGO_TARGET_DIR to keep the builds in
# a cache between runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

targets=("$@")
((${#targets[@]})) || targets=(aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
    arm-unknown-linux-musleabihf)

say() { printf 'emulated: %s\n' "$*"; }

qemu_for() {
    case $1 in
    aarch64-*) echo qemu-aarch64-static ;;
    armv7-* | arm-*) echo qemu-arm-static ;;
    x86_64-*) echo env ;; # runs natively
    *) return 1 ;;
    esac
}
# The CPU qemu emulates: the oldest that the binary is for.
cpu_for() {
    case $1 in
    aarch64-*) echo cortex-a53 ;;
    armv7-*) echo cortex-a7 ;;
    arm-*) echo arm1176 ;;
    *) echo "" ;;
    esac
}
board_for() {
    case $1 in
    aarch64-*) echo pi-4 ;;
    armv7-*) echo pi-2 ;;
    arm-*) echo pi-1 ;;
    *) echo x86-64 ;;
    esac
}
for target in "${targets[@]}"; do
    qemu=$(qemu_for "$target") || { say "no emulator known for $target"; exit 2; }
    command -v "$qemu" >/dev/null || { say "needs $qemu (apt-get install qemu-user-static)"; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/wisp-emulated.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do { kill -KILL "$pid" && wait "$pid"; } 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The client, and the modules to deploy.
cargo build --quiet -p wisp --bin wisp
client=${CARGO_TARGET_DIR:-target}/debug/wisp
modules=functions/target/wasm32-wasip1/release
[[ -f $modules/date.wasm && -f $modules/hello-c.wasm ]] || functions/build.sh >/dev/null

build_start=$SECONDS
boards/build.sh --profile emulated "${targets[@]}"
say "built ${#targets[@]} targets in $((SECONDS - build_start)) s"

# start QEMU BIN DATA LOG [ARGS...]: starts the server; sets $pid and $url. Fails after 60 s.
start() {
    local qemu=$1 bin=$2 data=$3 log=$4
    shift 4
    : >"$log.out"
    $qemu "$bin" serve --listen 127.0.0.1:0 --data "$data" "$@" >"$log.out" 2>>"$log.err" &
    pid=$!
    pids+=("$pid")
    url=
    for _ in $(seq 600); do
        url=$(sed -n 's|^wisp: listening on \(http://.*\)$|\1|p' "$log.out")
        [[ -n $url ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the server did not start" >>"$log.err"
    return 1
}

# stop: SIGTERM, then the exit status must be 0 (a graceful stop).
stop() {
    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    [[ $status == 0 ]] || { echo "the server exited with $status on SIGTERM" >>"$log.err"; return 1; }
}

# expect WHAT PATTERN TEXT: TEXT must match the extended regex PATTERN.
expect() {
    if grep -Eq "$2" <<<"$3"; then return 0; fi
    echo "$1: expected /$2/, got: $3" >>"$log.err"
    return 1
}

# cycle TARGET: deploy, call, restart, call; the log is in $work/TARGET.*.
cycle() {
    local target=$1 qemu bin data board out token
    qemu=$(qemu_for "$target")
    # Read by qemu-user; every run of the binary below is on this CPU.
    export QEMU_CPU
    QEMU_CPU=$(cpu_for "$target")
    bin=target/boards/emulated/wisp-$target
    data=$work/$target-data
    board=$(board_for "$target")
    log=$work/$target
    : >"$log.err"

    "$qemu" "$bin" --version >"$log.out" 2>>"$log.err" || return 1
    expect "--version" '^wisp ' "$(cat "$log.out")" || return 1
    # Unwinding through Zig's libunwind: the panic is caught and the frames' destructors run.
    out=$(WISP_CHECK_UNWIND=1 RUST_BACKTRACE=0 "$qemu" "$bin" 2>/dev/null) ||
        { echo "the unwinding check failed: $out" >>"$log.err"; return 1; }
    expect "the unwinding check" '^wisp: unwinding works' "$out" || return 1
    # mimalloc as configured: no transparent huge pages (.cargo/config.toml).
    out=$(MIMALLOC_VERBOSE=1 "$qemu" "$bin" --version 2>&1) || return 1
    expect "mimalloc's options" "option 'allow_thp': 0" "$out" || return 1

    start "$qemu" "$bin" "$data" "$log" --board "$board" || return 1
    expect "the profile line" "^wisp: board $board \(--board\): --workers [0-9]+ " "$(cat "$log.out")" || return 1
    # The first start made the admin token, as on a device.
    token=$(cat "$data/admin.token") || return 1
    out=$("$client" deploy date "$modules/date.wasm" --route /api/date --method GET \
        --server "$url" --token "$token" 2>&1) || { echo "deploy: $out" >>"$log.err"; return 1; }
    expect "deploy date" '^created date version 1 ' "$out" || return 1
    out=$("$client" deploy hello-c "$modules/hello-c.wasm" --route '/hello-c/...' \
        --server "$url" --token "$token" 2>&1) || { echo "deploy: $out" >>"$log.err"; return 1; }
    out=$("$client" invoke /api/date --server "$url" 2>&1) || { echo "invoke: $out" >>"$log.err"; return 1; }
    expect "GET /api/date" '^\{ ?"now": ?[0-9]{13} ?\}$' "$out" || return 1
    out=$("$client" invoke /hello-c/anything --server "$url" 2>&1) || { echo "invoke: $out" >>"$log.err"; return 1; }
    expect "GET /hello-c/anything" '^Hello from C! method=GET path=/anything' "$out" || return 1
    stop || return 1

    # Restarted on the same data folder, with no --board: the functions come back.
    start "$qemu" "$bin" "$data" "$log" || return 1
    expect "the restart" '^wisp: /api/date -> date \(version 1\)$' "$(cat "$log.out")" || return 1
    out=$("$qemu" "$bin" invoke /api/date --server "$url" 2>&1) || { echo "invoke on ARM: $out" >>"$log.err"; return 1; }
    expect "GET /api/date, ARM client" '"now": ?[0-9]{13}' "$out" || return 1
    out=$("$client" invoke /hello-c/again --server "$url" 2>&1) || { echo "invoke: $out" >>"$log.err"; return 1; }
    expect "GET /hello-c/again" '^Hello from C! method=GET path=/again' "$out" || return 1
    out=$("$qemu" "$bin" ls --server "$url" --token "$token" 2>&1) || { echo "ls on ARM: $out" >>"$log.err"; return 1; }
    expect "ls" '^date +1 +/api/date ' "$out" || return 1
    stop || return 1
}

passed=0 failed=0
for target in "${targets[@]}"; do
    t0=$SECONDS
    if cycle "$target"; then
        passed=$((passed + 1))
        say "$target: ok: unwinding, deploy, call, restart, call ($((SECONDS - t0)) s under $(qemu_for "$target")${QEMU_CPU:+ -cpu $QEMU_CPU})"
    else
        failed=$((failed + 1))
        say "$target: FAILED; the server's output and what went wrong:"
        sed 's/^/    /' "$log.out" "$log.err" | tail -40
        { kill -KILL "${pid:-}" && wait "${pid:-}"; } 2>/dev/null || true
    fi
done
say "wall time $((SECONDS - started)) s"
echo "emulated: $passed passed, $failed failed"
((failed == 0))
