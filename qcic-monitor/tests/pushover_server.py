#!/usr/bin/env python3
"""A stand-in for Pushover's Message API that checks each request as
Pushover documents it, and answers as Pushover does.

The rules come from Pushover's public documentation, https://pushover.net/api:
POST to /1/messages.json (form or JSON) with token (30 characters), user
(30 characters), message (required, at most 1024 characters), optional
title (at most 250), priority (-2 to 2; 2 needs retry and expire),
timestamp (unix seconds); answers {"status": 1, "request": "..."}, or a 4xx
with {"status": 0, "errors": [...], "request": "..."} (e.g. "user
identifier is invalid"), 429 when the application is over its limit.

Usage: pushover_server.py PORT OUT TOKEN USER [THROTTLE_FIRST]
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, TOKEN, USER = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
THROTTLE = [int(sys.argv[5]) if len(sys.argv) > 5 else 0]


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body, headers=()):
        body["request"] = "5042853c-402d-4a18-abcb-168734a801de"
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if THROTTLE[0] > 0:
            THROTTLE[0] -= 1
            return self.answer(429, {"status": 0, "errors": ["application is over its limit"]},
                               [("Retry-After", "1")])
        if self.path != "/1/messages.json":
            return self.answer(404, {"status": 0, "errors": ["not found"]})
        try:
            m = json.loads(raw)
        except ValueError:
            return self.answer(400, {"status": 0, "errors": ["invalid request"]})
        errors = []
        if m.get("token") != TOKEN:
            errors.append("application token is invalid")
        if m.get("user") != USER:
            errors.append("user identifier is invalid")
        message = m.get("message")
        if not isinstance(message, str) or not message or len(message) > 1024:
            errors.append("message cannot be blank" if not message else "message is too long")
        if "title" in m and (not isinstance(m["title"], str) or len(m["title"]) > 250):
            errors.append("title is too long")
        priority = m.get("priority", 0)
        if not isinstance(priority, int) or not -2 <= priority <= 2:
            errors.append("priority is invalid")
        elif priority == 2 and not ("retry" in m and "expire" in m):
            errors.append("retry and expire are required with priority 2")
        if "timestamp" in m and not isinstance(m["timestamp"], int):
            errors.append("timestamp is invalid")
        if errors:
            return self.answer(400, {"status": 0, "errors": errors})
        with open(OUT, "a") as out:
            out.write(json.dumps(m) + "\n")
        self.answer(200, {"status": 1})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
