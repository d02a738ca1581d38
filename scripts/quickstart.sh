#!/usr/bin/env bash
# Follows the README's "Quick start" literally: its sh block, line by line,
# in the repository, with the watcher's state and control socket kept in a
# throwaway directory (XDG_STATE_HOME, XDG_RUNTIME_DIR) and its files
# (qcic.toml, watcher.log) removed at the end. Fails if a line fails.
set -euo pipefail
cd "$(dirname "$0")/.."
block=$(awk '/^## Quick start/{q=1} q&&/^```sh/{f=1;next} f&&/^```/{exit} f' README.md)
[ -n "$block" ] || { echo "quickstart: no sh block under '## Quick start' in README.md" >&2; exit 1; }
for f in qcic.toml watcher.log; do
    [ ! -e "$f" ] || { echo "quickstart: $f exists; move it away first" >&2; exit 1; }
done
scratch=$(mktemp -d)
chmod 700 "$scratch"
cleanup() {
    pkill -f "qcic-monitor --config qcic.toml" 2>/dev/null || true
    rm -f qcic.toml watcher.log
    rm -rf "$scratch"
}
trap cleanup EXIT
export XDG_STATE_HOME="$scratch" XDG_RUNTIME_DIR="$scratch"
printf '%s\n' "$block" > "$scratch/quickstart.sh"
echo "== quick start, as the README writes it:" >&2
# -e: the first failing line fails the run; -x: each line is shown.
bash -ex "$scratch/quickstart.sh" > "$scratch/out" 2>&1 || { cat "$scratch/out" >&2; exit 1; }
grep -q '"name":"example"' "$scratch/out" || { cat "$scratch/out" >&2; echo "quickstart: /api/jobs did not show the job" >&2; exit 1; }
grep -q 'failed' "$scratch/out" || { cat "$scratch/out" >&2; echo "quickstart: status did not show the job failed" >&2; exit 1; }
echo "quickstart: every line worked; the watcher raised FAILED example" >&2
