#!/usr/bin/env python3
"""A stand-in for a Matrix homeserver's send endpoint that checks each
request as the Matrix specification says, and answers as a homeserver does.

The rules come from the Matrix client-server API specification:
- https://spec.matrix.org/v1.9/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid
  (PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}, the
  access token as "Authorization: Bearer"; 200 {"event_id"}; the same
  txnId again is the same event: idempotent)
- https://spec.matrix.org/v1.9/client-server-api/#standard-error-response
  ({"errcode", "error"}; M_UNKNOWN_TOKEN 401, M_FORBIDDEN 403,
  M_LIMIT_EXCEEDED 429 with retry_after_ms)
- https://spec.matrix.org/v1.9/client-server-api/#mtext and #mnotice
  (msgtype m.text / m.notice with a body)

Usage: matrix_server.py PORT OUT TOKEN ROOM [THROTTLE_FIRST]
Each new event is appended to OUT as one JSON line {"txn", "content"}.
"""
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, TOKEN, ROOM = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
THROTTLE = [int(sys.argv[5]) if len(sys.argv) > 5 else 0]
SEEN = {}


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if THROTTLE[0] > 0:
            THROTTLE[0] -= 1
            return self.answer(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 500})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown access token"})
        parts = [urllib.parse.unquote(p) for p in self.path.split("?")[0].split("/")]
        # ['', '_matrix', 'client', 'v3', 'rooms', ROOM, 'send', TYPE, TXN]
        if len(parts) != 9 or parts[1:5] != ["_matrix", "client", "v3", "rooms"] or parts[6] != "send":
            return self.answer(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
        room, event_type, txn = parts[5], parts[7], parts[8]
        if room != ROOM:
            return self.answer(403, {"errcode": "M_FORBIDDEN", "error": "User not in room"})
        try:
            content = json.loads(raw)
        except ValueError:
            return self.answer(400, {"errcode": "M_NOT_JSON", "error": "Content not JSON"})
        if event_type != "m.room.message" or content.get("msgtype") not in ("m.text", "m.notice") \
                or not isinstance(content.get("body"), str) or not content["body"]:
            return self.answer(400, {"errcode": "M_BAD_JSON", "error": "m.room.message needs msgtype and body"})
        if txn not in SEEN:
            SEEN[txn] = f"$event{len(SEEN)}"
            with open(OUT, "a") as out:
                out.write(json.dumps({"txn": txn, "content": content}) + "\n")
        self.answer(200, {"event_id": SEEN[txn]})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
