#!/usr/bin/env bash
# Every test: `cargo test` (unit and end-to-end tests on this machine; the quick loop), then
# the device binaries under qemu (tests/emulated.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test
tests/emulated.sh
