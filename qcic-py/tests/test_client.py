"""The Python sender against a real libzmq PULL receiver."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

import qcic

Message = qcic.Message


def decode_all(frames: list) -> list:
    return [Message.decode(f) for f in frames]


def test_every_kind_arrives(receiver) -> None:
    client = qcic.Client(receiver.endpoint, host="py-host")  # a comma-separated str works too
    assert client.heartbeat("py-job")
    with client.run("py-job") as run:
        assert run.progress("half way")
    started = client.start("py-job")
    started.fail("disk full", exit_code=3)
    assert client.fail("py-job", "outside a run")
    assert client.close(5.0)
    got = decode_all(receiver.frames(7))
    assert [m.kind for m in got] == ["heartbeat", "start", "progress", "success", "start", "fail", "fail"]
    assert got[1].run_id == got[2].run_id == got[3].run_id == run.id
    assert got[2].text == "half way"
    assert (got[5].exit_code, got[5].text) == (3, "disk full")
    assert got[6].run_id is None and got[6].text == "outside a run"
    assert all(m.host == "py-host" and m.pid == os.getpid() for m in got)
    assert [m.seq for m in got] == list(range(1, 8))


def test_a_reason_that_cannot_be_encoded_is_replaced_and_the_failure_sent(receiver) -> None:
    # A file name decoded with surrogateescape (os.listdir on a Latin-1 name).
    name = os.fsdecode(b"caf\xe9.csv")
    client = qcic.Client(receiver.endpoint)
    assert client.fail("py-job", f"{name} missing")
    run = client.start("py-job")
    assert run.progress(name)
    run.fail(name, exit_code=2)
    assert client.close(5.0)
    got = decode_all(receiver.frames(4))
    assert [(m.kind, m.text) for m in got] == [
        ("fail", "caf\ufffd.csv missing"),
        ("start", None),
        ("progress", "caf\ufffd.csv"),
        ("fail", "caf\ufffd.csv"),
    ]


def test_an_exception_inside_with_sends_fail_and_is_reraised(receiver) -> None:
    client = qcic.Client([receiver.endpoint])
    with pytest.raises(ValueError, match="boom"):
        with client.run("py-job"):
            raise ValueError("boom")
    with pytest.raises(SystemExit):
        with client.run("py-job"):
            sys.exit(4)
    with pytest.raises(SystemExit):
        with client.run("py-job"):
            sys.exit(0)  # a clean exit is a success
    client.flush(5.0)
    got = decode_all(receiver.frames(6))
    assert [(m.kind, m.text, m.exit_code) for m in got] == [
        ("start", None, None),
        ("fail", "ValueError: boom", None),
        ("start", None, None),
        ("fail", "SystemExit: 4", 4),
        ("start", None, None),
        ("success", None, None),
    ]


def test_the_decorator_wraps_each_call(receiver) -> None:
    client = qcic.Client([receiver.endpoint])

    @client.monitor("report-mail")
    def report(n: int) -> int:
        if n < 0:
            raise RuntimeError("negative")
        return n * 2

    @client.monitor
    def bare_name() -> str:
        return "ok"

    @client.monitor("async-job")
    async def fetch() -> str:
        await asyncio.sleep(0)
        return "fetched"

    assert report(21) == 42
    assert report.__name__ == "report"
    with pytest.raises(RuntimeError):
        report(-1)
    assert bare_name() == "ok"
    assert asyncio.run(fetch()) == "fetched"
    client.flush(5.0)
    got = decode_all(receiver.frames(8))
    assert [(m.job, m.kind) for m in got] == [
        ("report-mail", "start"),
        ("report-mail", "success"),
        ("report-mail", "start"),
        ("report-mail", "fail"),
        ("bare_name", "start"),
        ("bare_name", "success"),
        ("async-job", "start"),
        ("async-job", "success"),
    ]
    assert got[3].text == "RuntimeError: negative"


def test_a_run_dropped_unfinished_sends_fail(receiver) -> None:
    client = qcic.Client([receiver.endpoint])
    run = client.start("py-job")
    del run
    client.flush(5.0)
    got = decode_all(receiver.frames(2))
    assert [m.kind for m in got] == ["start", "fail"]
    assert got[1].text == "run dropped without success or fail"


def test_threads_share_one_client(receiver) -> None:
    client = qcic.Client([receiver.endpoint])

    def work(i: int) -> None:
        for _ in range(200):
            while not client.heartbeat(f"thread-{i}"):
                time.sleep(0.001)  # queue full: never blocks, so retry

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.close(10.0)
    got = decode_all(receiver.frames(1600))
    assert len(got) == 1600
    counts: dict = {}
    for m in got:
        counts[m.job] = counts.get(m.job, 0) + 1
    assert counts == {f"thread-{i}": 200 for i in range(8)}


def test_os_fork_child_sends_and_parent_keeps_working(receiver) -> None:
    client = qcic.Client([receiver.endpoint])
    assert client.heartbeat("parent-before")
    assert client.flush(5.0)
    pid = os.fork()
    if pid == 0:  # the child
        ok = client.heartbeat("child") and client.close(5.0)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert client.heartbeat("parent-after")
    assert client.close(5.0)
    got = decode_all(receiver.frames(3))
    assert sorted(m.job for m in got) == ["child", "parent-after", "parent-before"]
    assert {m.pid for m in got if m.job == "child"} != {os.getpid()}


@pytest.mark.parametrize("child_ends", ["sys.exit", "exception", "dropped"])
def test_a_forked_child_never_ends_its_parents_run(receiver, child_ends: str) -> None:
    """A child forked inside a run leaves it (sys.exit in the `with` block,
    an exception, or a `start()` run it lets go): the run goes on in the
    parent, so the child sends nothing for it, and the parent ends it."""
    client = qcic.Client([receiver.endpoint])
    pid = -1
    try:
        with client.run("py-fork") as run:
            held = client.start("py-held")
            assert client.flush(5.0)
            pid = os.fork()
            if pid == 0:  # the child leaves the `with` block
                if child_ends == "dropped":
                    del held
                    gc.collect()
                if child_ends == "exception":
                    raise RuntimeError("child-side error")
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            run.progress("the parent goes on")
            held.success()
    finally:
        if pid == 0:
            client.close(5.0)
            os._exit(0)
    assert client.close(5.0)
    got = decode_all(receiver.frames(5, timeout=3.0))
    assert [(m.job, m.kind) for m in got] == [
        ("py-fork", "start"),
        ("py-held", "start"),
        ("py-fork", "progress"),
        ("py-held", "success"),
        ("py-fork", "success"),
    ]
    assert receiver.quiet()


def _child_job(endpoint: str) -> None:
    qcic.init(endpoint)
    with qcic.run("mp-child"):
        pass


def test_multiprocessing_children_send(receiver) -> None:
    qcic.init([receiver.endpoint])
    qcic.heartbeat("mp-parent")
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)
        proc = ctx.Process(target=_child_job, args=(receiver.endpoint,))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0, method
    qcic.close(5.0)
    got = decode_all(receiver.frames(5))
    assert sorted((m.job, m.kind) for m in got) == [
        ("mp-child", "start"),
        ("mp-child", "start"),
        ("mp-child", "success"),
        ("mp-child", "success"),
        ("mp-parent", "heartbeat"),
    ]


def test_a_process_with_unreachable_watchers_exits_promptly() -> None:
    code = (
        "import qcic\n"
        "c = qcic.Client(['tcp://127.0.0.1:9', 'tcp://127.0.0.1:10'])\n"
        "with c.run('job') as r:\n"
        "    for i in range(500): r.progress('step')\n"
        "qcic.init('tcp://127.0.0.1:11'); qcic.heartbeat('job')\n"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 0
    # Two clients, each bounded by its 1 s close timeout at exit. A generous
    # limit: an unbounded LINGER would hang forever instead.
    assert took < 15, took


def test_bad_arguments_raise_type_and_value_errors(receiver) -> None:
    with pytest.raises(TypeError):
        qcic.Client([7])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        qcic.Client(b"tcp://x")  # type: ignore[arg-type]
    with pytest.raises(qcic.ConfigurationError):
        qcic.Client([])
    with pytest.raises(ValueError):
        qcic.Client(["nonsense"])
    client = qcic.Client([receiver.endpoint])
    with pytest.raises(qcic.InvalidJobError, match="may hold only"):
        client.heartbeat("has space")
    with pytest.raises(ValueError):
        client.heartbeat("")
    with pytest.raises(TypeError):
        client.heartbeat(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        client.flush(-1)
    run = client.start("ok-job")
    run.success()
    with pytest.raises(qcic.RunEndedError):
        run.success()
    assert client.close(5.0)
    with pytest.raises(qcic.ClientClosedError):
        client.heartbeat("ok-job")
    assert issubclass(qcic.ClientClosedError, qcic.QcicError)


def test_default_client_from_init_or_the_environment(receiver, monkeypatch) -> None:
    monkeypatch.setattr(qcic, "_default", None)
    monkeypatch.delenv("QCIC_ENDPOINTS", raising=False)
    with pytest.raises(qcic.NotInitializedError):
        qcic.heartbeat("env-job")
    with pytest.raises(qcic.ConfigurationError):
        qcic.Client()
    monkeypatch.setenv("QCIC_ENDPOINTS", receiver.endpoint)

    @qcic.monitor("env-job")
    def job() -> None:
        pass

    job()
    assert qcic.get_client().close(5.0)
    got = decode_all(receiver.frames(2))
    assert [m.kind for m in got] == ["start", "success"]
    monkeypatch.setattr(qcic, "_default", None)


def test_the_example_job_reports_its_runs(receiver) -> None:
    example = os.path.join(os.path.dirname(__file__), "../../examples/python/nightly_job.py")
    env = dict(os.environ, QCIC_ENDPOINTS=receiver.endpoint)
    subprocess.run([sys.executable, example], env=env, check=True, timeout=60)
    got = decode_all(receiver.frames(5))
    # Only the job the demo watcher's configuration has (examples/monitor.toml).
    assert [(m.job, m.kind) for m in got] == [
        ("nightly-etl", "start"),
        ("nightly-etl", "progress"),
        ("nightly-etl", "progress"),
        ("nightly-etl", "progress"),
        ("nightly-etl", "success"),
    ]
    with open(os.path.join(os.path.dirname(__file__), "../../examples/monitor.toml")) as f:
        assert 'name = "nightly-etl"' in f.read()
