"""Cost of one qcic.Client.heartbeat() call from Python.

A pyzmq PULL socket on a thread drains everything over tcp loopback. Calls
are timed in batches of 1000; between batches (untimed) the client is flushed
so every timed call is a real enqueue, not the cheaper queue-full drop.

Run: .venv/bin/python qcic-py/benches/bench_heartbeat.py   (after pip install ./qcic-py)
"""

import statistics
import threading
import time

import zmq

import qcic

BATCHES, PER_BATCH = 300, 1000


def main() -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")

    def drain() -> None:
        try:
            while True:
                pull.recv()
        except zmq.ContextTerminated:
            pull.close(linger=0)

    threading.Thread(target=drain, daemon=True).start()
    client = qcic.Client([f"tcp://127.0.0.1:{port}"])
    heartbeat = client.heartbeat
    per_call = []
    not_queued = 0
    for _ in range(BATCHES):
        t0 = time.perf_counter_ns()
        for _ in range(PER_BATCH):
            if not heartbeat("nightly-etl1"):
                not_queued += 1
        per_call.append((time.perf_counter_ns() - t0) / PER_BATCH)
        client.flush(5.0)
    per_call.sort()
    print(
        f"Python heartbeat: median {statistics.median(per_call):6.0f} ns  "
        f"p10 {per_call[BATCHES // 10]:6.0f} ns  p90 {per_call[BATCHES * 9 // 10]:6.0f} ns  "
        f"({BATCHES} batches of {PER_BATCH}, {not_queued} not queued)"
    )
    client.close(2.0)
    ctx.term()


if __name__ == "__main__":
    main()
