#!/usr/bin/env bash
# Runs every test: formatting, clippy with warnings as errors, the whole
# workspace's unit, integration and doc tests (real libzmq, real SMTP server,
# the real qcic-monitor binary, real C programs against libqcic), then the
# Python module built and installed from its wheel, its stubs checked by
# mypy.stubtest, and its pytest suite; a smoke run of the benchmark; the
# release packages built and tested (they are installed and removed: this
# runs on test machines); the README's quick start followed literally.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export QCIC_TEST_PYTHON="$PWD/.venv/bin/python"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== protocol vectors are what the independent encoder makes" >&2
tmp=$(mktemp -d)
cp docs/protocol-vectors.json docs/protocol-invalid-vectors.json "$tmp"/
.venv/bin/python scripts/gen-protocol-vectors.py >/dev/null
if ! diff -q "$tmp/protocol-vectors.json" docs/protocol-vectors.json >/dev/null ||
   ! diff -q "$tmp/protocol-invalid-vectors.json" docs/protocol-invalid-vectors.json >/dev/null; then
    cp "$tmp"/*.json docs/
    echo "docs/protocol-*vectors.json differ from scripts/gen-protocol-vectors.py's output" >&2
    exit 1
fi
rm -rf "$tmp"
echo "== cargo test" >&2
cargo test --workspace --locked

echo "== python: pip install ./qcic-py (maturin wheel), stubtest, mypy, pytest" >&2
.venv/bin/pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./qcic-py
(cd /tmp && "$QCIC_TEST_PYTHON" -m mypy.stubtest qcic._qcic)
(cd qcic-py/python && "$QCIC_TEST_PYTHON" -m mypy --strict -p qcic)
# The wheel promises CPython 3.9+: nothing newer may be used at run time.
(cd qcic-py/python && "$QCIC_TEST_PYTHON" -m mypy --strict --python-version 3.9 -p qcic)
cargo build --locked -p qcic-monitor
QCIC_MONITOR_BIN="$PWD/target/debug/qcic-monitor" "$QCIC_TEST_PYTHON" -m pytest -q qcic-py/tests

# The benchmark still runs end to end (every figure, small sizes); it
# asserts nothing about speed: timing claims live in docs/BENCHMARKS.md.
echo "== qcic-bench --quick (smoke test)" >&2
cargo bench --locked -p qcic-monitor --bench qcic-bench -- --quick --json target/qcic-bench-quick.json
"$QCIC_TEST_PYTHON" - <<'PY'
import json
figures = json.load(open("target/qcic-bench-quick.json"))["figures"]
kinds = {f["figure"] for f in figures}
missing = {"ingest", "sender_cost", "detection", "memory", "wire", "startup", "takeover", "poisoned", "idle_connections", "email_digests"} - kinds
errors = [f for f in figures if "error" in f]
assert not missing and not errors, (missing, errors)
print(f"qcic-bench --quick: {len(figures)} figures, all measured")
PY

# The release artefacts, built and then installed and used as a user would.
echo "== packages: scripts/package.sh, scripts/test-packages.sh" >&2
bash scripts/package.sh
bash scripts/test-packages.sh

# The README's quick start, line by line as written.
echo "== quick start (README), followed literally" >&2
bash scripts/quickstart.sh
