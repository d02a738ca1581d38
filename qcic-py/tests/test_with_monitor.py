"""The Python sender against the real qcic-monitor binary."""

from __future__ import annotations

import datetime

import pytest

import qcic


def test_an_exception_in_a_python_job_reaches_the_watcher_as_failed(monitor_factory) -> None:
    mon = monitor_factory('[[job]]\nname = "py-etl"\nevery = "1h"\nmax_runtime = "1h"\n')
    client = qcic.Client([mon.listen])
    with pytest.raises(KeyError):
        with client.run("py-etl") as run:
            run.progress("loaded 10k rows")
            raise KeyError("customer_id")
    alert = mon.alert("alert.failed.py-etl")
    assert alert["text"] == "KeyError: 'customer_id'"
    assert alert["run_id"] == run.id
    assert alert["watcher"] == "py-watcher"

    @client.monitor("py-etl")
    def nightly() -> None:
        pass

    nightly()
    recovered = mon.alert("alert.recovered.py-etl")
    assert recovered["incident"] == alert["incident"]
    assert recovered["resolves"] == "failed"
    client.close(2.0)


@pytest.mark.parametrize("ending", ["normal", "uncaught"])
def test_a_run_left_unfinished_at_exit_reports_fail(monitor_factory, ending: str) -> None:
    """A script that starts a run and ends (or dies of an exception) without
    ending it: the run sends ``fail`` at interpreter exit, before the client
    closes, and the job does not stay ``running`` for ever."""
    import subprocess
    import sys

    mon = monitor_factory('[[job]]\nname = "py-left"\nevery = "1h"\nmax_runtime = "1h"\n')
    script = (
        "import qcic\n"
        f"client = qcic.Client([{mon.listen!r}])\n"
        "run = client.start('py-left')\n"
        "run.progress('half way')\n"
        "print(run.id)\n"
        + ("raise ValueError('boom')\n" if ending == "uncaught" else "")
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == (1 if ending == "uncaught" else 0), done.stderr
    alert = mon.alert("alert.failed.py-left")
    assert alert["run_id"] == int(done.stdout.split()[0])
    if ending == "uncaught":
        assert alert["text"] == "ValueError: boom (uncaught); the program exited before the run ended"
        assert alert["exit_code"] == 1
    else:
        assert alert["text"] == "the program exited before the run ended"
        assert alert.get("exit_code") is None


def test_the_readme_sigterm_handler_turns_a_kill_into_fail(monitor_factory) -> None:
    """qcic installs no signal handler; the README's two lines make SIGTERM
    end the run with ``fail`` (exit code 143)."""
    import signal
    import subprocess
    import sys

    mon = monitor_factory('[[job]]\nname = "py-term"\nevery = "1h"\nmax_runtime = "1h"\n')
    script = (
        "import signal, sys, time, qcic\n"
        "signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))\n"
        f"client = qcic.Client([{mon.listen!r}])\n"
        "with client.run('py-term'):\n"
        "    print('running', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143
    alert = mon.alert("alert.failed.py-term")
    assert alert["text"] == "SystemExit: 143"
    assert alert["exit_code"] == 143


def test_jobs_declared_from_python_go_down_at_their_deadline_and_recover(monitor_factory) -> None:
    """No [[job]] for them: `run(..., every=...)` and `monitor(..., every=...)`
    declare the job before the start, and the watcher takes it from there."""
    m = monitor_factory('[declare]\nallow = true\nmin_every = "1s"\n')
    client = qcic.Client([m.listen], close_timeout=5.0)
    with client.run("py-run", every="2s", grace="1s", max_runtime="1h"):
        pass

    @client.monitor("py-decorated", every=2, grace=datetime.timedelta(seconds=1))
    def work() -> int:
        return 7

    assert work() == 7
    # Both come due at about the same time: read both downs, then both follow-ups.
    downs = {job: m.alert(f"alert.down.{job}") for job in ("py-run", "py-decorated")}
    for job, down in downs.items():
        assert down["detected_ms"] - down["last_seen_ms"] >= 3000, down
        client.heartbeat(job)
    for job, down in downs.items():
        assert m.alert(f"alert.recovered.{job}")["incident"] == down["incident"]
    assert client.close(5.0)
