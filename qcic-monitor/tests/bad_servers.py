"""Servers that misbehave the way real ones do, for the delivery tests.

  webhook PORT OUT [JOB=SECONDS:STATUS ...]
      An HTTP server that takes many requests at once. Each POST is logged
      to OUT as one JSON line when it arrives ({"job", "event", "incident",
      "t": unix seconds}),
      then answered after SECONDS with STATUS for a job named in the
      arguments (200 at once for any other job).
  smtp-silent PORT
      Accepts TCP connections and never says a word (no greeting).
  smtp-stall PORT
      Greets and takes the envelope and the message, then never answers
      the end of DATA.
  smtp-late PORT OUT
      A working SMTP server with two quirks: the first message whose
      subject names job "slow" gets its reply 4 s late (past a 2 s
      deadline), and the first whose subject names job "grey" is
      greylisted (451). Every reply given to a message is logged to OUT
      as a JSON line {"job", "reply"}.

Each server prints "ready" once it listens, and runs until killed.
"""

import asyncio
import json
import sys
import time
from typing import Awaitable, Callable, Optional


async def webhook(port: int, out: str, rules: dict[str, tuple[float, int]]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                note = json.loads(await reader.readexactly(length))
                with open(out, "a") as f:
                    seen = {k: note.get(k) for k in ("job", "event", "incident")}
                    f.write(json.dumps({**seen, "t": time.time()}) + "\n")
                delay, status = rules.get(note.get("job", ""), (0.0, 200))
                await asyncio.sleep(delay)
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    await serve(handle, port)


async def smtp_dialog(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: bytes,
                      on_message: "Callable[[bytes], Awaitable[Optional[bytes]]]") -> None:
    """One SMTP conversation: greets, takes the envelope, and after each
    message's end of DATA sends what `on_message(body)` returns (None: never
    answers)."""
    writer.write(b"220 " + name + b" ESMTP\r\n")
    await writer.drain()
    while True:
        line = await reader.readline()
        if not line:
            return
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            writer.write(b"250 " + name + b"\r\n")
        elif verb == b"DATA":
            writer.write(b"354 go on\r\n")
            await writer.drain()
            body = b""
            while (chunk := await reader.readline()) not in (b".\r\n", b""):
                body += chunk
            reply = await on_message(body)
            if reply is None:
                await asyncio.Event().wait()
                return
            writer.write(reply)
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"250 ok\r\n")
        try:
            await writer.drain()
        except ConnectionError:
            return


async def serve(handle: "Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]",
                port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


async def smtp(port: int, stall_data: bool) -> None:
    async def never(_body: bytes) -> Optional[bytes]:
        return None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not stall_data:
            await asyncio.Event().wait()
        await smtp_dialog(reader, writer, b"stall.test", never)

    await serve(handle, port)


async def smtp_late(port: int, out: str) -> None:
    seen: dict[str, int] = {}

    async def reply(body: bytes) -> Optional[bytes]:
        job = "slow" if b"FAILED slow" in body else "grey" if b"FAILED grey" in body else "other"
        seen[job] = seen.get(job, 0) + 1
        answer = b"250 ok\r\n"
        if job == "slow" and seen[job] == 1:
            await asyncio.sleep(4)
        if job == "grey" and seen[job] == 1:
            answer = b"451 greylisted, try again later\r\n"
        with open(out, "a") as f:
            f.write(json.dumps({"job": job, "reply": answer.decode().strip()}) + "\n")
        return answer

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await smtp_dialog(reader, writer, b"late.test", reply)

    await serve(handle, port)


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "webhook":
        rules = {}
        for rule in sys.argv[4:]:
            job, _, how = rule.partition("=")
            seconds, _, status = how.partition(":")
            rules[job] = (float(seconds), int(status or 200))
        asyncio.run(webhook(port, sys.argv[3], rules))
    elif mode == "smtp-late":
        asyncio.run(smtp_late(port, sys.argv[3]))
    elif mode in ("smtp-silent", "smtp-stall"):
        asyncio.run(smtp(port, mode == "smtp-stall"))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
