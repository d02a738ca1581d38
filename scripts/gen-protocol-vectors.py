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
import shlex

import msgpack

KINDS = {"start": 1, "progress": 2, "success": 3, "fail": 4, "heartbeat": 5, "declare": 6}
# The `expect` map's key codes (field 10 of `declare`), in wire order.
EXPECT = ["every", "cron", "timezone", "grace", "start_within", "max_runtime", "stall_after",
          "min_runtime", "alert_after_failures", "recover_after_successes", "notify",
          "slow_after", "depends_on", "after"]
DURATIONS = {"every", "grace", "start_within", "max_runtime", "stall_after", "min_runtime"}
TS = 1764072000000  # 2025-11-25T12:00:00Z
RUN = 0x1F2E3D4C5B6A7988
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


def expect_map(e):
    """The wire map: key codes ascending; durations in ms; absent keys left out."""
    return {EXPECT.index(k) + 1: e[k] for k in EXPECT if k in e}


def duration_text(ms):
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def spec_string(e):
    """The spec string of docs/PROTOCOL.md: keys in wire order, values quoted
    as a POSIX shell needs (shlex.quote), channels joined by commas."""
    parts = []
    for k in EXPECT:
        if k not in e:
            continue
        v = e[k]
        if k in DURATIONS:
            v = duration_text(v)
        elif k in ("notify", "depends_on"):
            v = shlex.quote(",".join(v))
        elif k == "slow_after":
            # Thousandths on the wire, a factor in the spec string.
            v = f"{v // 1000}" if v % 1000 == 0 else f"{v // 1000}.{v % 1000:03d}".rstrip("0")
        elif isinstance(v, str):
            v = shlex.quote(v)
        parts.append(f"{k}={v}")
    return " ".join(parts)


def plain(f):
    """The fields as the vectors file spells them: a run id as 16 hex
    digits (a uint64 past 2^53 is no JSON number to JavaScript)."""
    out = {k: v for k, v in f.items() if k != "_expect"}
    if out["run_id"] is not None:
        out["run_id"] = f"{out['run_id']:016x}"
    return out


def encode(f):
    arr = [1, KINDS[f["kind"]], f["job"], f["run_id"], f["seq"], f["ts_ms"], f["host"], f["pid"]]
    if f.get("_expect") is not None:
        arr += [f["exit_code"], f["text"], expect_map(f["_expect"])]
    elif f["text"] is not None:
        arr += [f["exit_code"], f["text"]]
    elif f["exit_code"] is not None:
        arr += [f["exit_code"]]
    return msgpack.packb(arr, use_bin_type=True)


def fields(kind, job="nightly-etl1", run_id=None, seq=1, ts_ms=TS, host="etl-worker-01",
           pid=48213, exit_code=None, text=None, expect=None):
    f = {"job": job, "kind": kind, "run_id": run_id, "seq": seq, "ts_ms": ts_ms,
         "host": host, "pid": pid, "exit_code": exit_code, "text": text,
         "expect": None if expect is None else spec_string(expect)}
    if expect is not None:
        f["_expect"] = expect
    return f


DAY, HOUR, MINUTE = 86400000, 3600000, 60000


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
    ("declare-every", fields("declare", seq=49, expect={
        "every": DAY, "grace": HOUR, "max_runtime": 2 * HOUR})),
    ("declare-cron", fields("declare", seq=50, expect={
        "cron": "30 2 * * 1-5", "timezone": "Europe/London", "grace": 15 * MINUTE,
        "start_within": 5 * MINUTE, "stall_after": 10 * MINUTE, "min_runtime": 1500,
        "alert_after_failures": 2, "recover_after_successes": 3, "notify": ["ops-mail", "pager"]})),
    ("declare-slow-after", fields("declare", seq=51, expect={
        "every": HOUR, "max_runtime": 4 * HOUR, "slow_after": 2500})),
    ("declare-chain", fields("declare", seq=52, expect={
        "every": DAY, "start_within": 10 * MINUTE, "depends_on": ["db-host-alive", "nightly-extract"],
        "after": "nightly-extract"})),
    # The largest declaration: every string and list at its limit.
    ("declare-limits", fields("declare", job="y" * 128, seq=U64_MAX, ts_ms=U64_MAX, host="h" * 255,
                              pid=U32_MAX, expect={
        "cron": "0 " * 63 + "*!", "timezone": "Z" * 64, "grace": 100 * 365 * DAY,
        "start_within": 1, "max_runtime": 100 * 365 * DAY, "stall_after": 100 * 365 * DAY,
        "min_runtime": 100 * 365 * DAY, "alert_after_failures": 1000,
        "recover_after_successes": 1000, "notify": ["n" * 64] * 8, "slow_after": 1000000,
        "depends_on": [c * 128 for c in "defg"], "after": "a" * 128})),
]

DECLARE = [1, 6, "job", None, 1, TS, "h", 1, None, None]


def declare_with(expect_hex):
    """A declare frame whose `expect` is these raw bytes (for what
    msgpack-python will not write, such as a key given twice)."""
    return "9b" + "".join(msgpack.packb(x).hex() for x in DECLARE) + expect_hex


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
    ("declare-without-expect", hexof(DECLARE[:8]), "invalid_field"),
    ("declare-expect-nil", hexof(DECLARE + [None]), "invalid_field"),
    ("declare-expect-not-a-map", hexof(DECLARE + ["every=1d"]), "malformed"),
    ("declare-no-schedule", hexof(DECLARE + [{4: 1000}]), "invalid_field"),
    ("declare-every-and-cron", hexof(DECLARE + [{1: 1000, 2: "@daily"}]), "invalid_field"),
    ("declare-every-zero", hexof(DECLARE + [{1: 0}]), "invalid_field"),
    ("declare-every-as-text", hexof(DECLARE + [{1: "1d"}]), "malformed"),
    ("declare-timezone-without-cron", hexof(DECLARE + [{1: 1000, 3: "UTC"}]), "invalid_field"),
    ("declare-grace-over-100-years", hexof(DECLARE + [{1: 1000, 4: 100 * 365 * DAY + 1}]), "invalid_field"),
    ("declare-count-zero", hexof(DECLARE + [{1: 1000, 9: 0}]), "invalid_field"),
    ("declare-nine-channels", hexof(DECLARE + [{1: 1000, 11: ["c"] * 9}]), "invalid_field"),
    ("declare-five-dependencies", hexof(DECLARE + [{1: 1000, 13: ["a", "b", "c", "d", "e"]}]), "invalid_field"),
    ("declare-after-without-start-within", hexof(DECLARE + [{1: 1000, 14: "a"}]), "invalid_field"),
    ("declare-cron-with-line-break", hexof(DECLARE + [{2: "0 2 * * *\n"}]), "invalid_field"),
    ("declare-key-given-twice", declare_with("82" + "01cd03e8" + "01cd03e8"), "malformed"),
]


def main():
    docs = pathlib.Path(__file__).resolve().parent.parent / "docs"
    valid = [{"name": n, "hex": encode(f).hex(), "fields": plain(f)}
             for n, f in VALID]
    invalid = [{"name": n, "hex": h, "reason": r} for n, h, r in INVALID]
    (docs / "protocol-vectors.json").write_text(json.dumps(valid, indent=2, ensure_ascii=False) + "\n")
    (docs / "protocol-invalid-vectors.json").write_text(json.dumps(invalid, indent=2) + "\n")
    for v in valid:
        print(f'{v["name"]:32} {len(v["hex"]) // 2:4} bytes')


if __name__ == "__main__":
    main()
