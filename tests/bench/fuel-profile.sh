#!/usr/bin/env bash
# Where a function's fuel goes, function by function (see tests/bench/fuel-profile/).
#
#   tests/bench/fuel-profile.sh [trivial|date|weather|counter|hostile|PATH/TO/CRATE-IN-functions]
#
# Builds the example (functions/, with its name section kept, into target/bench-guest/names),
# instruments it (every guest function reports entry and exit to the host), runs it once under
# wasmi with fuel metering as Wisp configures it, with the environment of a GET through Wisp's
# front end, and prints the fuel by guest function. Needs wabt (wasm2wat, wat2wasm) and python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
name=${1:-trivial}
shift || true
for tool in wasm2wat wat2wasm python3; do
    command -v $tool >/dev/null || { echo "fuel-profile: needs $tool (Debian: apt-get install wabt python3)" >&2; exit 2; }
done
names=$root/target/bench-guest/names
(cd functions && CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --quiet -p "$name" --target-dir "$names")
(cd tests/bench/fuel-profile && cargo build --release --quiet --target-dir "$root/target/bench-guest/native")
python3 tests/bench/fuel-profile/instrument.py "$names/wasm32-wasip1/release/$name.wasm" "$names/$name.prof"
"$root/target/bench-guest/native/release/fuel-profile" "$names/$name.prof.wasm" "$names/$name.prof.names" "$@"
