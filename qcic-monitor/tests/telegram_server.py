#!/usr/bin/env python3
"""A stand-in for Telegram's Bot API `sendMessage` that checks each request
as Telegram documents it, and answers as the Bot API does.

The rules come from Telegram's public documentation:
- https://core.telegram.org/bots/api#making-requests (POST to
  /bot<token>/METHOD with a JSON body; every answer is JSON with "ok"; an
  error has "error_code" and "description", and a 429 has
  "parameters": {"retry_after": N})
- https://core.telegram.org/bots/api#sendmessage (chat_id: an integer or
  @channelusername; text: 1-4096 characters after entities parsing;
  link_preview_options)

Usage: telegram_server.py PORT OUT TOKEN CHAT_ID [THROTTLE_FIRST]
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, TOKEN, CHAT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
THROTTLE = [int(sys.argv[5]) if len(sys.argv) > 5 else 0]


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, code, description, **extra):
        body = {"ok": False, "error_code": code, "description": description}
        body.update(extra)
        self.answer(code, body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if THROTTLE[0] > 0:
            THROTTLE[0] -= 1
            return self.fail(429, "Too Many Requests: retry after 1", parameters={"retry_after": 1})
        if self.path != f"/bot{TOKEN}/sendMessage":
            return self.fail(401 if self.path.endswith("/sendMessage") else 404,
                             "Unauthorized" if self.path.endswith("/sendMessage") else "Not Found")
        try:
            message = json.loads(raw)
        except ValueError:
            return self.fail(400, "Bad Request: message text is empty")
        chat = message.get("chat_id")
        if str(chat) != CHAT:
            return self.fail(400, "Bad Request: chat not found")
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            return self.fail(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self.fail(400, "Bad Request: message is too long")
        if "parse_mode" in message and message["parse_mode"] not in ("HTML", "Markdown", "MarkdownV2"):
            return self.fail(400, "Bad Request: unsupported parse_mode")
        with open(OUT, "a") as out:
            out.write(json.dumps(message) + "\n")
        self.answer(200, {"ok": True, "result": {"message_id": 1, "date": int(time.time()),
                                                 "chat": {"id": chat}, "text": text}})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
