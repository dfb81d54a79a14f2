#!/usr/bin/env bash
# Builds every function module into target/wasm32-wasip1/release/ and lists them with their
# sizes. Safe to run from any folder and cheap when nothing changed.
#
# The Rust modules need only Rust (the wasm32-wasip1 target is added through rustup if
# missing). hello-c needs clang and wasi-libc, go-seed a Go toolchain: each is built when its
# toolchain is there, and otherwise skipped with one line saying what is missing and the
# command that adds it; the script still succeeds, and `wisp up --build` serves the rest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -x wasm32-wasip1 >/dev/null; then
    rustup target add wasm32-wasip1
fi
cargo build --release --quiet
built=(date weather trivial hostile counter checkout payment heartbeat audit events)

# Each of these exits 3 when its toolchain is missing, having said what to install.
for name in hello-c go-seed; do
    status=0
    "$name/build.sh" || status=$?
    case $status in
    0) built+=("$name") ;;
    3) ;;
    *) exit "$status" ;;
    esac
done

for name in "${built[@]}"; do
    module="target/wasm32-wasip1/release/$name.wasm"
    printf '%8d  %s\n' "$(wc -c <"$module")" "$PWD/$module"
done
