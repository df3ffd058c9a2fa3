#!/usr/bin/env bash
# Everything CI checks, from a fresh clone: set-up, formatting, lints, then every test (unit
# tests, two-process calls over loopback, a call through a lossy network namespace).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
