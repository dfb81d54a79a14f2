#!/usr/bin/env bash
# Fuzzes Wisp's input parsers and the engine with cargo-fuzz (libFuzzer, nightly):
#
#   tests/fuzz.sh SECONDS [TARGET...]
#
# Targets (tests/fuzz/fuzz_targets/): http_request (the HTTP front end, arbitrary bytes on a
# connection), cgi_response (a function's stdout into a response), config (function
# configuration and manifest JSON), module_upload (arbitrary bytes through the deploy checks),
# smith_run (valid wasm-smith modules run under tight fuel, memory and time). Each runs for
# SECONDS; its corpus is kept in target/fuzz-corpus/TARGET, crashes in
# tests/fuzz/artifacts/TARGET (each one becomes a regression test). Prints each target's
# executions and coverage. Installs cargo-fuzz and the nightly toolchain if missing; not run
# by CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:?usage: tests/fuzz.sh SECONDS [TARGET...]}
shift
targets=("$@")
((${#targets[@]})) || targets=(http_request cgi_response config module_upload smith_run)

rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

for target in "${targets[@]}"; do
    corpus=target/fuzz-corpus/$target
    mkdir -p "$corpus"
    echo "fuzz: $target for ${seconds}s"
    # smith_run runs guest loops: wasmi's handlers call each other in tail position, which
    # only an optimized build without debug assertions turns into jumps (`-O`); with them,
    # any long guest loop overflows the native stack (an artefact of the instrumented build:
    # release builds end such loops at their fuel limit, see engine::tests).
    release=()
    [[ $target == smith_run ]] && release=(-O)
    cargo +nightly fuzz run --fuzz-dir tests/fuzz "${release[@]}" "$target" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 2>&1 |
        tee "target/fuzz-$target.log" | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss)|cov:' | tail -3
done
