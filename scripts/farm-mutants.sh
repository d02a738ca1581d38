#!/usr/bin/env bash
# Puts each of issue 14's four farm defects back, one at a time, in a
# scratch worktree, and runs the farm simulation's survey on it: each must
# make schedules fail (the simulation catches the defect). Not part of
# scripts/test.sh (about 10 minutes on 2 cores); run it after changing the
# gate, the registry's farm part or the simulation.
#   scripts/farm-mutants.sh            all four
#   MUTANTS="2 4" scripts/farm-mutants.sh
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
wt=$(mktemp -d)/wt
git worktree add -q "$wt" HEAD
trap 'cd "$root"; git worktree remove --force "$wt"' EXIT
cd "$wt"
export CARGO_TARGET_DIR="$root/target/mutants"
put_back() {
    git checkout -q -- .
    python3 - "$1" <<'PY'
import sys
def sub(path, old, new):
    # A search string that no longer matches (the code moved) must stop
    # the run: a defect not put back would be reported as not caught.
    text = open(path).read()
    if old not in text:
        sys.exit(f"{path}: the code to change is gone (update this script): {old!r}")
    open(path, "w").write(text.replace(old, new, 1))
gate = "qcic-monitor/src/farm/gate.rs"
job = "qcic-monitor/src/registry/job.rs"
rules = "qcic-monitor/src/registry/rules.rs"
peer = "qcic-monitor/src/registry/peer.rs"
m = sys.argv[1]
if m == "1":  # peer_down named by the peer's generation only
    sub(gate, 'let basis = format!("generation:{generation}/heartbeat:{}", heartbeat(&peer));',
        'let basis = format!("generation:{generation}"); let _ = heartbeat(&peer);')
if m == "2":  # held alarms released at once when isolation ends
    sub(gate, "self.rejoined_until = Some(now + self.cfg.dead_after + self.cfg.gossip_interval * 2);",
        "self.rejoined_until = None;")
if m == "3":  # each watcher names the outage by the last message it heard itself
    sub(job, "        if !self.is_later(pid, seq, ts_ms, host) {",
        "        if true || !self.is_later(pid, seq, ts_ms, host) {")
    sub(peer, "            last.name_by_latest(known.pid, known.seq, known.ts_ms, &known.host);",
        "            if !known.by_peer { last.pid = known.pid; last.seq = known.seq; "
        "last.ts_ms = known.ts_ms; last.host = Arc::clone(&known.host); }")
if m == "4":  # messages delivered late taken as life
    sub(rules, "    pub(super) fn stale(&self, j: JobIdx, msg: &Message, now: Now) -> Option<u64> {",
        "    pub(super) fn stale(&self, j: JobIdx, msg: &Message, now: Now) -> Option<u64> {\n        if true { return None; }")
    sub(rules, "        if ts_ms == 0 {\n            return None; // no sender clock",
        "        if true || ts_ms == 0 {\n            return None; // no sender clock")
PY
}
status=0
for m in ${MUTANTS:-1 2 3 4}; do
    put_back "$m" || { echo "defect $m: could not be put back"; status=1; continue; }
    out=$(QCIC_SIM_SURVEY=1 cargo test -q -p qcic-monitor --test farm_sim 2>&1)
    line=$(echo "$out" | grep -o '[0-9]* of [0-9]* schedules failed.*' | head -1)
    echo "defect $m put back: ${line:-no survey result}"
    echo "$out" | grep -A1 "panicked at" | grep "(replay" | sed 's/.*watchers: //; s/schedule and sends.*//' \
        | sed 's/[0-9a-f]\{16\}/ID/g; s/[0-9]\{3,\}/N/g' | sort | uniq -c | sort -rn | head -3
    case "$line" in "0 of "*|"") status=1; echo "  NOT CAUGHT" ;; esac
done
exit $status
