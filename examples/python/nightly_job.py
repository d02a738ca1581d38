"""A nightly job that reports to qcic watchers. Copy it.

Install the sender once:   pip install ./qcic-py        (from the qcic repository)
Run:                       QCIC_ENDPOINTS=tcp://watcher-a:7700,tcp://watcher-b:7700 python nightly_job.py
Against the demo watcher (`scripts/demo.sh`, whose configuration has the
job `nightly-etl`): QCIC_ENDPOINTS=tcp://127.0.0.1:7700 python nightly_job.py

No qcic call blocks or stops the job. If an exception escapes the monitored
function, the watchers get `fail` with "ExcType: message" and the exception
goes on as usual; at exit, undelivered messages get at most 1 s.
"""

import qcic

qcic.init()  # endpoints from QCIC_ENDPOINTS; or qcic.init(["tcp://watcher-a:7700"])


def extract() -> list:
    return list(range(3))


def main() -> None:
    # One run: start ... success, or fail if an exception escapes. (Or
    # decorate a function with @qcic.monitor("nightly-etl"): each call is
    # one run.)
    with qcic.run("nightly-etl") as run:
        rows = extract()
        for i, _row in enumerate(rows, 1):
            run.progress(f"loaded {i} of {len(rows)} rows")


if __name__ == "__main__":
    main()
