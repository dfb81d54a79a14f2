#!/usr/bin/env bash
# Builds hello.c into ../target/wasm32-wasip1/release/hello-c.wasm with clang and wasi-libc.
#   CC            a clang with the wasm32 target (default: clang)
#   WASI_SYSROOT  where wasi-libc lives (default: /usr, Debian's wasi-libc package;
#                 with wasi-sdk: /opt/wasi-sdk/share/wasi-sysroot)
# Exits 3, after one line saying what is missing, when the toolchain is not all there.
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
# What the build needs, each checked so that one line can say what is missing: clang, its wasm
# linker (wasm-ld, from lld, found on PATH or beside clang), wasi-libc, and the compiler-rt
# builtins for wasm32 (libclang_rt.builtins-wasm32.a). Without them: exit 3, and ../build.sh
# goes on without this module.
missing=()
if command -v "$cc" >/dev/null; then
    cc_dir=$(dirname "$(command -v "$cc")")
    command -v wasm-ld >/dev/null || [[ -x $cc_dir/wasm-ld ]] || missing+=("wasm-ld (lld)")
    builtins=$("$cc" --target=wasm32-wasi --sysroot="$sysroot" -print-libgcc-file-name 2>/dev/null) || true
    [[ -n $builtins && -f $builtins ]] || missing+=("the wasm32 compiler-rt builtins (${builtins:-libclang_rt.builtins-wasm32.a})")
else
    missing+=("$cc")
fi
[[ -f $sysroot/lib/wasm32-wasi/libc.a ]] || missing+=("wasi-libc ($sysroot/lib/wasm32-wasi/libc.a)")
if ((${#missing[@]})); then
    list=$(printf '%s, ' "${missing[@]}")
    echo "hello-c: not built: no ${list%, }; on Debian add them with: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 3
fi
mkdir -p "$out_dir"
# The same memory layout as the Rust functions: a 64 KiB stack placed first, so instantiation
# sets up 2 pages and a stack overflow traps instead of overwriting data.
"$cc" --target=wasm32-wasi --sysroot="$sysroot" -O2 -Wall -Wextra \
    -Wl,-z,stack-size=65536 -Wl,--stack-first -Wl,--strip-all \
    -o "$out.tmp" "$here/hello.c"
mv "$out.tmp" "$out"
