#!/usr/bin/env bash
# Builds the static device binaries and reports their sizes.
#
#   boards/build.sh [--profile PROFILE] [TARGET...]
#   boards/build.sh --tools        # only installs what the builds need (see below)
#
# TARGETs (default: all four):
#   x86_64-unknown-linux-musl        x86 edge boxes
#   aarch64-unknown-linux-musl       Raspberry Pi 3, 4, 5, Zero 2 W, CM3/4/5 with a 64-bit OS
#   armv7-unknown-linux-musleabihf   Raspberry Pi 2, 3, 4, Zero 2 W with a 32-bit OS
#   arm-unknown-linux-musleabihf     Raspberry Pi 1, Zero, Zero W (ARMv6; runs on any 32-bit Pi)
# PROFILE: release (default: fat LTO, stripped; what users get) or emulated (CI's quick build).
#
# Every target is built alike: `cargo +nightly zigbuild -Zbuild-std`, Zig being the C compiler
# (for mimalloc) and the linker, and supplying musl's libc, C start files and libunwind. Installs
# what is missing: Zig and cargo-zigbuild (pip), the nightly toolchain and its rust-src (rustup;
# WISP_NIGHTLY names another toolchain). The binaries are copied to
# target/boards/PROFILE/wisp-TARGET; each must be statically linked (`file`), with nothing for
# `ldd` to load, and the ARMv6 one must contain no ARMv7 code (`readelf -A`), or the script fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
targets=()
tools_only=0
while (($#)); do
    case $1 in
    --profile) profile=$2; shift ;;
    --tools) tools_only=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
    esac
    shift
done
((${#targets[@]})) || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl
    armv7-unknown-linux-musleabihf arm-unknown-linux-musleabihf)
for target in "${targets[@]}"; do
    case $target in
    x86_64-unknown-linux-musl | aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf | \
        arm-unknown-linux-musleabihf) ;;
    *) echo "build.sh: unknown target $target (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'boards: %s\n' "$*" >&2; }

# retry WHAT COMMAND...: rustup's and pip's downloads fail now and then.
retry() {
    local what=$1 attempt
    shift
    for attempt in 1 2 3 4 5; do
        "$@" && return
        say "$what failed (attempt $attempt); retrying"
        sleep $((attempt * 5))
    done
    say "$what failed"
    exit 1
}

# Zig and cargo-zigbuild, from PyPI, at the versions these builds were made with.
# cargo-zigbuild finds Zig as `zig` or as the ziglang package (`python3 -m ziglang`).
need_zig() {
    # pip puts scripts there when it installs for the user rather than system-wide.
    PATH=$PATH:$HOME/.local/bin
    if command -v cargo-zigbuild >/dev/null &&
        { command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1; }; then
        return
    fi
    local packages=(ziglang==0.17.1 cargo-zigbuild==0.24.1)
    say "installing ${packages[*]} (pip)"
    # A Debian python3 refuses to install beside its own packages unless told to (PEP 668).
    pip_install() {
        python3 -m pip install --quiet "${packages[@]}" 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages "${packages[@]}"
    }
    retry "pip install" pip_install
    command -v pyenv >/dev/null && pyenv rehash
    hash -r
    command -v cargo-zigbuild >/dev/null || { say "cargo-zigbuild is not on PATH after pip install"; exit 1; }
}

# The nightly toolchain (-Zbuild-std) and the std sources it builds.
nightly=${WISP_NIGHTLY:-nightly}
need_nightly() {
    if ! rustup run "$nightly" rustc --version >/dev/null 2>&1; then
        say "installing the $nightly toolchain"
        retry "rustup toolchain install $nightly" \
            rustup toolchain install "$nightly" --profile minimal --component rust-src
    fi
    rustup component list --toolchain "$nightly" --installed | grep -q '^rust-src' ||
        retry "rustup component add rust-src" rustup component add rust-src --toolchain "$nightly"
    sysroot=$(rustup run "$nightly" rustc --print sysroot)
}

need_zig
need_nightly
((tools_only)) && exit 0

# std from source: panics unwind (a connection's panic is caught), backtraces are addresses only
# (the binaries are stripped: symbolizing code would have nothing to read), size-optimized
# algorithms. std keeps the profile's opt-level: with std, core and alloc at "s" the binaries came
# out larger, not smaller (0.17 MB on x86_64, 0.13 MB on aarch64; "z" larger still).
build_std=(-Zbuild-std=std,panic_unwind
    -Zbuild-std-features=panic-unwind,backtrace,backtrace-trace-only,optimize_for_size)
# For every crate, std included (boards/README.md, "Sizes"): a panic's message names no file and
# line (0.1 MB), and derived Debug prints a value's type or variant without its fields (0.33 MB).
# Given with --config, they add to the target's rustflags in .cargo/config.toml (RUSTFLAGS would
# replace those).
nightly_flags='"-Zlocation-detail=none", "-Zfmt-debug=shallow"'

out_dir=target/boards/$profile
mkdir -p "$out_dir"
built=()
for target in "${targets[@]}"; do
    # rustc passes the target's directory in the toolchain to the linker, which warns when it
    # is missing; there is none, as no rustup target is installed.
    mkdir -p "$sysroot/lib/rustlib/$target/lib"
    say "building $target ($profile)"
    start=$SECONDS
    cargo "+$nightly" zigbuild --quiet --profile "$profile" --target "$target" -p wisp --bin wisp \
        "${build_std[@]}" --config "target.$target.rustflags = [$nightly_flags]"
    say "built $target in $((SECONDS - start)) s"
    cp "${CARGO_TARGET_DIR:-target}/$target/$profile/wisp" "$out_dir/wisp-$target"
    built+=("$out_dir/wisp-$target")
done

# The report: size, what `file` says, what `ldd` finds. A binary that is not static fails.
failed=0
printf '\n%-56s %9s %6s  %s\n' binary bytes MiB file
for bin in "${built[@]}"; do
    bytes=$(stat -c %s "$bin")
    kind=$(file -b "$bin" | sed 's/, BuildID\[[^]]*\]=[0-9a-f]*//')
    printf '%-56s %9d %6.2f  %s\n' "$bin" "$bytes" "$(awk -v b="$bytes" 'BEGIN {print b / 1048576}')" "$kind"
    if ! file -b "$bin" | grep -q 'statically linked'; then
        say "$bin is not statically linked"
        failed=1
    fi
    # ldd lists what the loader would load: nothing for a static binary of any architecture.
    if ldd "$bin" 2>&1 | grep -q '=>'; then
        say "ldd finds libraries to load for $bin: $(ldd "$bin" 2>&1 | tr '\n' ' ')"
        failed=1
    fi
    # The ARMv6 binary: every object in it (Rust's, Zig's libc and libunwind, mimalloc) must be
    # built for ARMv6, or a Pi Zero or Pi 1 would meet an instruction it does not have.
    if [[ $bin == *-arm-unknown-linux-musleabihf ]] && command -v readelf >/dev/null; then
        arch=$(readelf -A "$bin" | sed -n 's/^ *Tag_CPU_arch: *//p')
        if [[ $arch != v6* ]]; then
            say "$bin is built for ${arch:-an unknown CPU}, not ARMv6"
            failed=1
        fi
    fi
done
exit "$failed"
