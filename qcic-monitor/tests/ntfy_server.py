#!/usr/bin/env python3
"""A stand-in for an ntfy server that checks each publish request as ntfy
documents it, and answers as ntfy does.

The rules come from ntfy's public documentation:
- https://docs.ntfy.sh/publish/ (publishing with POST/PUT to /<topic>; the
  Title, Priority (1-5 or min/low/default/high/urgent) and Tags headers;
  the message in the body, at most 4096 bytes before it becomes an
  attachment)
- https://docs.ntfy.sh/publish/#access-tokens (Authorization: Bearer)
- https://docs.ntfy.sh/publish/#limitations and the server's JSON errors
  ({"code": 40101, "http": 401, "error": "unauthorized"}, 42901 "limit
  reached: too many requests")

Usage: ntfy_server.py PORT OUT TOPIC TOKEN|- [THROTTLE_FIRST]
Each accepted message is appended to OUT as one JSON line (topic, title,
priority, tags, message). The first THROTTLE_FIRST requests get 429.
"""
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, TOPIC, TOKEN = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
THROTTLE = [int(sys.argv[5]) if len(sys.argv) > 5 else 0]
PRIORITIES = {"1", "2", "3", "4", "5", "min", "low", "default", "high", "urgent", "max"}


class Handler(BaseHTTPRequestHandler):
    def error(self, http, code, text, headers=()):
        data = json.dumps({"code": code, "http": http, "error": text,
                           "link": "https://ntfy.sh/docs/publish/"}).encode()
        self.send_response(http)
        self.send_header("Content-Type", "application/json")
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def publish(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if THROTTLE[0] > 0:
            THROTTLE[0] -= 1
            return self.error(429, 42901, "limit reached: too many requests", [("Retry-After", "1")])
        topic = self.path.lstrip("/").split("?")[0]
        if not re.fullmatch(r"[-_A-Za-z0-9]{1,64}", topic):
            return self.error(400, 40009, "invalid topic")
        if TOKEN != "-" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.error(401, 40101, "unauthorized")
        if topic != TOPIC:
            return self.error(403, 40301, "forbidden")
        priority = self.headers.get("Priority") or self.headers.get("X-Priority") or "default"
        if priority not in PRIORITIES:
            return self.error(400, 40007, "invalid priority")
        if len(body) > 4096:
            return self.error(400, 40012, "message too large for a message (would be an attachment)")
        title = self.headers.get("Title") or self.headers.get("X-Title") or ""
        tags = self.headers.get("Tags") or self.headers.get("X-Tags") or ""
        message = body.decode("utf-8")
        with open(OUT, "a") as out:
            out.write(json.dumps({"topic": topic, "title": title, "priority": priority,
                                  "tags": [t for t in tags.split(",") if t], "message": message}) + "\n")
        data = json.dumps({"id": "qcicTest0001", "time": int(time.time()), "event": "message",
                           "topic": topic, "message": message}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = publish
    do_PUT = publish

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
