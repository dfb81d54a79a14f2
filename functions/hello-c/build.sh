#!/usr/bin/env bash
# Builds hello.c into ../target/wasm32-wasip1/release/hello-c.wasm with clang and wasi-libc.
#   CC            a clang with the wasm32 target (default: clang)
#   WASI_SYSROOT  where wasi-libc lives (default: /usr, Debian's wasi-libc package;
#                 with wasi-sdk: /opt/wasi-sdk/share/wasi-sysroot)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="$here/../target/wasm32-wasip1/release"
out="$out_dir/hello-c.wasm"
cc="${CC:-clang}"
sysroot="${WASI_SYSROOT:-/usr}"

# Rebuild only when the source or this script changed: the host may run the build often.
if [[ -f "$out" && "$out" -nt "$here/hello.c" && "$out" -nt "${BASH_SOURCE[0]}" ]]; then
    exit 0
fi
if ! command -v "$cc" >/dev/null; then
    echo "hello-c: $cc not found; on Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 1
fi
mkdir -p "$out_dir"
# The same memory layout as the Rust functions: a 64 KiB stack placed first, so instantiation
# sets up 2 pages and a stack overflow traps instead of overwriting data.
"$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -Wextra \
    -Wl,-z,stack-size=65536 -Wl,--stack-first -Wl,--strip-all \
    -o "$out.tmp" "$here/hello.c"
mv "$out.tmp" "$out"
