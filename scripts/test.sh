#!/usr/bin/env bash
# Runs the whole Trellis test suite: unit tests, per-crate integration tests
# and whole-system tests (each starts its own nats-server on a free port).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/prereqs.sh
# A clean build gains nothing from incremental state; it only costs disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export PATH="$HOME/.local/bin:$PATH"
echo "==> building workspace and guest components"
cargo build --workspace --all-targets --locked
cargo build --release --target wasm32-wasip2 --manifest-path examples/components/Cargo.toml --target-dir target/guests
echo "==> running tests"
cargo test --workspace --no-fail-fast -- --test-threads="${TRELLIS_TEST_THREADS:-4}"
