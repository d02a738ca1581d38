#!/usr/bin/env python3
"""Writes docs/protocol-vectors.json and docs/protocol-invalid-vectors.json.

The bytes come from msgpack-python, an encoder independent of the Rust code,
following the rules of docs/PROTOCOL.md (array form, smallest integer
encodings, absent optional fields at the end left out). The Rust, C and Python
test suites decode every vector and must re-encode it byte for byte.

Usage: python3 scripts/gen-protocol-vectors.py   (needs: pip install msgpack)
"""
import json
import pathlib

import msgpack

KINDS = {"start": 1, "progress": 2, "success": 3, "fail": 4, "heartbeat": 5}
TS = 1764072000000  # 2025-11-25T12:00:00Z
RUN = 0x1F2E3D4C5B6A7988
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


def encode(f):
    arr = [1, KINDS[f["kind"]], f["job"], f["run_id"], f["seq"], f["ts_ms"], f["host"], f["pid"]]
    if f["text"] is not None:
        arr += [f["exit_code"], f["text"]]
    elif f["exit_code"] is not None:
        arr += [f["exit_code"]]
    return msgpack.packb(arr, use_bin_type=True)


def fields(kind, job="nightly-etl1", run_id=None, seq=1, ts_ms=TS, host="etl-worker-01",
           pid=48213, exit_code=None, text=None):
    return {"job": job, "kind": kind, "run_id": run_id, "seq": seq, "ts_ms": ts_ms,
            "host": host, "pid": pid, "exit_code": exit_code, "text": text}


VALID = [
    ("heartbeat", fields("heartbeat", seq=42)),
    ("start", fields("start", run_id=RUN, seq=43)),
    ("progress-with-text", fields("progress", run_id=RUN, seq=44, text="extracted 1200 rows")),
    ("success", fields("success", run_id=RUN, seq=45)),
    ("fail-with-exit-code-and-text", fields("fail", run_id=RUN, seq=46, exit_code=3,
                                            text="database connection refused")),
    ("fail-text-only", fields("fail", run_id=RUN, seq=47, text="killed by signal 9")),
    ("fail-exit-code-only", fields("fail", run_id=None, seq=48, exit_code=-1)),
    ("heartbeat-limits", fields("heartbeat", job="j", seq=U64_MAX, ts_ms=U64_MAX, host="",
                                pid=U32_MAX)),
    ("start-max-run-id", fields("start", job="A.b_c-9", run_id=U64_MAX, seq=0, ts_ms=0, pid=0)),
    ("fail-utf8-and-min-exit", fields("fail", job="x" * 128, run_id=0, seq=256, exit_code=-2**31,
                                      host="h\u00f6st", text="\u00fcberlauf \u2713 " + "z" * 100)),
]


def nest_list(depth):
    value = None
    for _ in range(depth):
        value = [value]
    return value


def nest_map(depth):
    value = None
    for _ in range(depth):
        value = {0: value}
    return value


def hexof(obj):
    return msgpack.packb(obj, use_bin_type=True).hex()


INVALID = [
    ("empty", "", "malformed"),
    ("not-an-array", hexof({"v": 1}), "malformed"),
    ("version-2", hexof([2, "whatever", 7]), "unsupported_version"),
    ("version-0", hexof([0, 5, "job", None, 1, TS, "h", 1]), "unsupported_version"),
    ("unknown-kind", hexof([1, 9, "job", None, 1, TS, "h", 1]), "unknown_kind"),
    ("too-few-elements", hexof([1, 5, "job", None, 1, TS, "h"]), "malformed"),
    ("job-with-space", hexof([1, 5, "bad job", None, 1, TS, "h", 1]), "invalid_field"),
    ("job-empty", hexof([1, 5, "", None, 1, TS, "h", 1]), "invalid_field"),
    ("job-too-long", hexof([1, 5, "x" * 129, None, 1, TS, "h", 1]), "invalid_field"),
    ("text-too-long", hexof([1, 4, "job", None, 1, TS, "h", 1, None, "x" * 1025]), "invalid_field"),
    ("host-too-long", hexof([1, 5, "job", None, 1, TS, "h" * 256, 1]), "invalid_field"),
    ("trailing-arrays-17-deep", hexof([1, 5, "job", None, 1, TS, "h", 1, None, None, nest_list(16)]), "malformed"),
    ("trailing-maps-17-deep", hexof([1, 5, "job", None, 1, TS, "h", 1, None, None, nest_map(16)]), "malformed"),
    ("host-with-line-break", hexof([1, 5, "job", None, 1, TS, "h\r\nFORGED log line", 1]), "invalid_field"),
    ("host-with-terminal-escape", hexof([1, 5, "job", None, 1, TS, "h\x1b]0;title\x07", 1]), "invalid_field"),
    ("host-with-bidi-override", hexof([1, 5, "job", None, 1, TS, "h\u202egnp.exe", 1]), "invalid_field"),
    ("pid-negative", hexof([1, 5, "job", None, 1, TS, "h", -1]), "malformed"),
    ("seq-is-string", hexof([1, 5, "job", None, "1", TS, "h", 1]), "malformed"),
    ("trailing-byte", hexof([1, 5, "job", None, 1, TS, "h", 1]) + "c0", "malformed"),
    ("truncated", hexof([1, 5, "job", None, 1, TS, "h", 1])[:-4], "malformed"),
    ("str32-claims-4GiB", "980105dbffffffff61", "malformed"),
    ("too-large", "c0" * 2049, "too_large"),
]


def main():
    docs = pathlib.Path(__file__).resolve().parent.parent / "docs"
    valid = [{"name": n, "hex": encode(f).hex(), "fields": f} for n, f in VALID]
    invalid = [{"name": n, "hex": h, "reason": r} for n, h, r in INVALID]
    (docs / "protocol-vectors.json").write_text(json.dumps(valid, indent=2, ensure_ascii=False) + "\n")
    (docs / "protocol-invalid-vectors.json").write_text(json.dumps(invalid, indent=2) + "\n")
    for v in valid:
        print(f'{v["name"]:32} {len(v["hex"]) // 2:4} bytes')


if __name__ == "__main__":
    main()
