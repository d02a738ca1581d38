"""Real parts for the Python tests: a pyzmq PULL receiver (real libzmq), the
real qcic-monitor binary, and the qcic module installed from its wheel."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
from typing import Iterator, List, Tuple

import pytest
import zmq

ROOT = pathlib.Path(__file__).resolve().parents[2]


class ReservedPort:
    """A loopback port held for a server that binds it later: a socket bound
    with SO_REUSEADDR that never listens. Linux hands such a port to no
    bind to port 0 and to no outgoing connection, yet lets a server that
    sets SO_REUSEADDR (libzmq does) bind it; a port picked, released and
    bound later could be taken meanwhile."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.endpoint = f"tcp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._socket.close()


def bind_fresh(sock: zmq.Socket) -> str:
    """Binds `sock` to a loopback port libzmq picks (and keeps); its endpoint."""
    sock.bind("tcp://127.0.0.1:*")
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


class Receiver:
    """A PULL socket bound on a fresh loopback port."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.socket = ctx.socket(zmq.PULL)
        self.socket.linger = 0
        self.endpoint = bind_fresh(self.socket)

    def frames(self, n: int, timeout: float = 20.0) -> List[bytes]:
        got: List[bytes] = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            if self.socket.poll(100):
                got.append(self.socket.recv())
        return got

    def quiet(self, wait: float = 0.3) -> bool:
        """True if nothing more arrives within `wait` seconds."""
        return self.socket.poll(int(wait * 1000)) == 0


@pytest.fixture
def zctx() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def receiver(zctx: zmq.Context) -> Receiver:
    return Receiver(zctx)


@pytest.fixture(scope="session")
def vectors() -> list:
    return json.loads((ROOT / "docs/protocol-vectors.json").read_text())


@pytest.fixture(scope="session")
def invalid_vectors() -> list:
    return json.loads((ROOT / "docs/protocol-invalid-vectors.json").read_text())


def monitor_binary() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("QCIC_MONITOR_BIN", ROOT / "target/debug/qcic-monitor"))
    if not path.exists():
        pytest.fail(f"{path} not found: build it with `cargo build -p qcic-monitor` (scripts/test.sh does)")
    return path


class Monitor:
    """The real qcic-monitor binary with a PUB alert stream and a SUB on it."""

    def __init__(self, zctx: zmq.Context, jobs: str) -> None:
        # Held while the monitor lives.
        self.ports = [ReservedPort(), ReservedPort()]
        self.listen = self.ports[0].endpoint
        self.publish = self.ports[1].endpoint
        self.dir = tempfile.TemporaryDirectory()
        config = pathlib.Path(self.dir.name) / "monitor.toml"
        config.write_text(
            f'[monitor]\nid = "py-watcher"\nlisten = ["{self.listen}"]\n'
            f'state = "{pathlib.Path(self.dir.name) / "state.db"}"\n'
            f'control = "{pathlib.Path(self.dir.name) / "control.sock"}"\n\n{jobs}\n'
            f'[[notify]]\nkind = "zmq"\npublish = "{self.publish}"\n'
        )
        self.log = pathlib.Path(self.dir.name) / "stderr.log"
        self.proc = subprocess.Popen(
            [str(monitor_binary()), "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        deadline = time.monotonic() + 20
        while "qcic-monitor started" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "monitor did not start"
            time.sleep(0.02)
        self.unread: List[Tuple[bytes, bytes]] = []
        self.sub = zctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.subscribe(b"alert.")
        self.sub.connect(self.publish)
        time.sleep(0.5)  # PUB drops what it publishes before the subscription arrives

    def alert(self, topic: str, timeout: float = 20.0) -> dict:
        """The next alert of `topic`; alerts of other topics read meanwhile
        are kept for later calls (two jobs' alerts may come in either order)."""
        import msgpack

        for i, (got, body) in enumerate(self.unread):
            if got.decode() == topic:
                del self.unread[i]
                return dict(msgpack.unpackb(body))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sub.poll(100):
                got, body = self.sub.recv_multipart()
                if got.decode() == topic:
                    return dict(msgpack.unpackb(body))
                self.unread.append((got, body))
        raise AssertionError(f"no {topic} within {timeout}s; saw {[g for g, _ in self.unread]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.dir.cleanup()
        for port in self.ports:
            port.close()


@pytest.fixture
def monitor_factory(zctx: zmq.Context) -> Iterator:
    started: List[Monitor] = []

    def start(jobs: str) -> Monitor:
        m = Monitor(zctx, jobs)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()
