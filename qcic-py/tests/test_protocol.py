"""The protocol vectors, byte for byte, through the installed module."""

from __future__ import annotations

import os

import pytest

import qcic


def message_from_fields(f: dict) -> qcic.Message:
    return qcic.Message(
        f["kind"],
        f["job"],
        run_id=None if f["run_id"] is None else int(f["run_id"], 16),
        seq=f["seq"],
        ts_ms=f["ts_ms"],
        host=f["host"],
        pid=f["pid"],
        exit_code=f["exit_code"],
        text=f["text"],
        expect=f["expect"],
    )


def test_every_vector_encodes_and_decodes_exactly(vectors: list) -> None:
    kinds = set()
    for v in vectors:
        frame = bytes.fromhex(v["hex"])
        expected = message_from_fields(v["fields"])
        assert expected.encode() == frame, v["name"]
        decoded = qcic.Message.decode(frame)
        assert decoded == expected, v["name"]
        for key, value in v["fields"].items():
            if key == "run_id" and value is not None:
                # The file spells run ids as 16 hex digits.
                assert f"{decoded.run_id:016x}" == value, v["name"]
                continue
            assert getattr(decoded, key) == value, (v["name"], key)
        kinds.add(decoded.kind)
    assert kinds == {"start", "progress", "success", "fail", "heartbeat", "declare"}


def test_invalid_vectors_raise_decode_error_with_the_reason(invalid_vectors: list) -> None:
    for v in invalid_vectors:
        with pytest.raises(qcic.DecodeError) as info:
            qcic.Message.decode(bytes.fromhex(v["hex"]))
        assert info.value.reason == v["reason"], v["name"]
        assert isinstance(info.value, ValueError)


def test_vectors_sent_through_a_client_arrive_byte_for_byte(vectors: list, receiver) -> None:
    client = qcic.Client([receiver.endpoint])
    for v in vectors:
        assert client.send_message(message_from_fields(v["fields"]))
    frames = receiver.frames(len(vectors))
    assert [f.hex() for f in frames] == [v["hex"] for v in vectors]
    assert client.close(5.0)


def test_bad_messages_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        qcic.Message("hearbeat", "job").encode()
    with pytest.raises(qcic.InvalidMessageError):
        qcic.Message("heartbeat", "bad job").encode()
    with pytest.raises(TypeError):
        qcic.Message.decode("not bytes")  # type: ignore[arg-type]


def test_declarations_name_the_key_at_fault_and_read_back() -> None:
    assert qcic._qcic.spec_string("j", [("every", "1d"), ("grace", "3600000ms")]) == "every=1d grace=1h"
    assert qcic._qcic.spec_string("j", [("every", "1h"), ("slow_after", "2.5")]) == "every=1h slow_after=2.5"
    assert (
        qcic._qcic.spec_string("j", [("after", "a"), ("every", "1h"), ("start_within", "5m"), ("depends_on", "db,a")])
        == "every=1h start_within=5m depends_on=db,a after=a"
    )
    for kwargs, key in [
        ({"every": "soon"}, "every"),
        ({"every": "1m", "cron": "@daily"}, "cron"),
        ({"every": "1m", "grace": "200years"}, "grace"),
        ({"every": 60, "alert_after_failures": 0}, "alert_after_failures"),
        ({"every": 60, "notify": ["ok", "not ok"]}, "notify"),
        ({"every": -1}, "every"),
        ({"every": 60, "slow_after": 1.0}, "slow_after"),
        ({"every": 60, "depends_on": ["a", "b", "c", "d", "e"]}, "depends_on"),
        ({"every": 60, "depends_on": "a,a"}, "depends_on"),
        ({"every": 60, "after": "extract"}, "after"),
        ({"every": 60, "start_within": 60, "after": "bad name"}, "after"),
        ({}, "spec"),
    ]:
        with pytest.raises(qcic.InvalidSpecError) as info:
            qcic.Client(["tcp://127.0.0.1:1"]).declare("j", **kwargs)  # type: ignore[arg-type]
        assert info.value.key == key, (kwargs, info.value)
        assert isinstance(info.value, ValueError)
    # Checked where it is written: at decoration, not at the first call.
    with pytest.raises(qcic.InvalidSpecError):
        qcic.Client(["tcp://127.0.0.1:1"]).monitor("j", every="often")


def test_the_version_is_the_workspaces() -> None:
    import tomllib

    path = os.path.join(os.path.dirname(__file__), "../../Cargo.toml")
    with open(path, "rb") as f:
        version = tomllib.load(f)["workspace"]["package"]["version"]
    assert qcic.__version__ == version
