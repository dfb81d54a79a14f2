#!/usr/bin/env bash
# Builds the static device binaries and reports their sizes.
#
#   boards/build.sh [--profile PROFILE] [TARGET...]
#
# TARGETs (default: all three):
#   x86_64-unknown-linux-musl       x86 edge boxes
#   aarch64-unknown-linux-musl      Raspberry Pi 3, 4, 5, Zero 2 W, CM3/4/5 with a 64-bit OS
#   armv7-unknown-linux-gnueabihf   Raspberry Pi 2, 3, 4, Zero 2 W with a 32-bit OS
# PROFILE: release (default: fat LTO, stripped; what users get) or emulated (CI's quick build).
#
# Installs what a target lacks: its rustup target, and for armv7 Debian's cross gcc (needs root
# and apt-get). The binaries are copied to target/boards/PROFILE/wisp-TARGET; each must be
# statically linked (`file`), with nothing for `ldd` to load, or the script fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile=release
targets=()
while (($#)); do
    case $1 in
    --profile) profile=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1") ;;
    esac
    shift
done
((${#targets[@]})) || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)

say() { printf 'boards: %s\n' "$*" >&2; }

# rustup's downloads fail now and then: retry.
add_target() {
    rustup target list --installed | grep -qx "$1" && return
    for attempt in 1 2 3 4 5; do
        rustup target add "$1" && return
        say "rustup target add $1 failed (attempt $attempt); retrying"
        sleep $((attempt * 5))
    done
    say "cannot install the rustup target $1"
    exit 1
}

# The linker .cargo/config.toml names for the target; rust-lld comes with Rust.
need_linker() {
    case $1 in
    armv7-unknown-linux-gnueabihf)
        command -v arm-linux-gnueabihf-gcc >/dev/null && return
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            say "installing Debian's gcc-arm-linux-gnueabihf (the armhf static glibc and its linker)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-arm-linux-gnueabihf >/dev/null
        else
            say "$1 needs arm-linux-gnueabihf-gcc: sudo apt-get install gcc-arm-linux-gnueabihf"
            exit 1
        fi
        ;;
    esac
}

out_dir=target/boards/$profile
mkdir -p "$out_dir"
built=()
for target in "${targets[@]}"; do
    add_target "$target"
    need_linker "$target"
    say "building $target ($profile)"
    start=$SECONDS
    cargo build --quiet --profile "$profile" --target "$target" -p wisp --bin wisp
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
done
exit "$failed"
