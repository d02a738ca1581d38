"""CURVE from Python: against a pyzmq CURVE server (real libzmq)."""

from __future__ import annotations

import pytest
import zmq

import qcic
from conftest import bind_fresh


@pytest.fixture
def curve_receiver(zctx: zmq.Context):
    public, secret = zmq.curve_keypair()
    pull = zctx.socket(zmq.PULL)
    pull.linger = 0
    pull.curve_server = True
    pull.curve_secretkey = secret
    endpoint = bind_fresh(pull)
    return endpoint, public.decode(), pull


def frames(pull: zmq.Socket, n: int) -> list:
    got = []
    while len(got) < n and pull.poll(20000):
        got.append(qcic.Message.decode(pull.recv()))
    return got


def test_a_client_with_the_server_key_is_heard(curve_receiver) -> None:
    endpoint, server_key, pull = curve_receiver
    me_public, me_secret = (k.decode() for k in zmq.curve_keypair())
    client = qcic.Client(
        [endpoint], server_key=server_key, client_public_key=me_public, client_secret_key=me_secret
    )
    assert client.heartbeat("curve-py")
    assert client.close(5.0)
    assert [m.job for m in frames(pull, 1)] == ["curve-py"]


def test_keys_come_from_the_environment(curve_receiver, monkeypatch) -> None:
    endpoint, server_key, pull = curve_receiver
    monkeypatch.setenv("QCIC_SERVER_KEY", server_key)
    client = qcic.Client([endpoint])  # a fresh client key pair
    assert client.heartbeat("curve-env")
    assert client.close(5.0)
    assert [m.job for m in frames(pull, 1)] == ["curve-env"]


def test_bad_keys_are_configuration_errors() -> None:
    with pytest.raises(qcic.ConfigurationError, match="CURVE"):
        qcic.Client(["tcp://127.0.0.1:1"], server_key="short")
    with pytest.raises(ValueError, match="both"):
        qcic.Client(["tcp://127.0.0.1:1"], server_key="x" * 40, client_public_key="y" * 40)
