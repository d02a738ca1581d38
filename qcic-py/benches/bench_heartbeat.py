"""Cost of one qcic.Client.heartbeat() call from Python.

Run by qcic-bench (cargo bench -p qcic-monitor --bench qcic-bench), or alone:
.venv/bin/python qcic-py/benches/bench_heartbeat.py UP_ENDPOINT DOWN_ENDPOINT CALLS
(after pip install ./qcic-py). UP_ENDPOINT has a PULL draining it; nothing
listens on DOWN_ENDPOINT. Prints one JSON object, the same shape as the C
program's: each call timed alone (ns; the clock's own cost apart), with the
watcher up, and with it down while the queue fills and once it is full, and
resident memory before and after the calls to the dead watcher.
"""

import json
import sys
import time
from array import array

import qcic

FILLING = 2000


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def summary(times: "array[int]") -> dict[str, float]:
    v = sorted(times)
    return {"median_ns": float(v[len(v) // 2]), "p99_ns": float(v[len(v) * 99 // 100]), "calls": len(v)}


def main() -> None:
    up_endpoint, down_endpoint, calls = sys.argv[1], sys.argv[2], max(int(sys.argv[3]), 2 * FILLING)
    clock = time.perf_counter_ns
    empty = array("q", bytes(8 * calls))
    for i in range(calls):
        t0 = clock()
        empty[i] = clock() - t0

    up = qcic.Client([up_endpoint])
    heartbeat = up.heartbeat
    times = array("q", bytes(8 * calls))
    for i in range(calls):
        if i % 1000 == 0:
            up.flush(5.0)
        t0 = clock()
        heartbeat("nightly-etl1")
        times[i] = clock() - t0
    result = {"lang": "Python", "clock": summary(empty), "up": summary(times)}

    down = qcic.Client([down_endpoint])
    heartbeat = down.heartbeat
    # Preallocated: the list growing would show in the memory figure.
    times = array("q", bytes(8 * calls))
    before = rss_kib()
    for i in range(calls):
        t0 = clock()
        heartbeat("nightly-etl1")
        times[i] = clock() - t0
    after = rss_kib()
    result["down_filling"] = summary(times[:FILLING])
    result["down_full"] = summary(times[calls // 2 :])
    result["rss_kib_before"] = before
    result["rss_kib_after"] = after
    print(json.dumps(result))
    up.close(2.0)
    down.close(0.1)


if __name__ == "__main__":
    main()
