#!/usr/bin/env bash
# Builds every function module into target/wasm32-wasip1/release/ and lists them with their
# sizes. Safe to run from any folder and cheap when nothing changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if command -v rustup >/dev/null && ! rustup target list --installed | grep -x wasm32-wasip1 >/dev/null; then
    rustup target add wasm32-wasip1
fi
cargo build --release --quiet
hello-c/build.sh

for name in date weather hello-c trivial hostile counter checkout payment heartbeat audit events; do
    module="target/wasm32-wasip1/release/$name.wasm"
    printf '%8d  %s\n' "$(wc -c <"$module")" "$PWD/$module"
done
