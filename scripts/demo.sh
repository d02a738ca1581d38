#!/usr/bin/env bash
# Runs the monitor on its embedded defaults (examples/monitor.toml) with the
# built-in demo sender: FAILED, DOWN and RECOVERED notifications appear in
# the log within seconds. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --locked -p qcic-monitor -- --demo "$@"
