#!/usr/bin/env python3
"""A stand-in for a Discord webhook that checks each message as Discord
documents it, and answers as Discord does.

The rules come from Discord's public documentation:
- https://discord.com/developers/docs/resources/webhook#execute-webhook
  (POST JSON; content, embeds (at most 10), username, allowed_mentions;
  204 No Content on success without ?wait=true)
- https://discord.com/developers/docs/resources/message#embed-object-embed-limits
  (title 256, description 4096, at most 25 fields, field name 256 and
  value 1024, 6000 characters in all; timestamp ISO 8601)
- https://discord.com/developers/docs/topics/opcodes-and-status-codes#json
  (errors as JSON: 10015 Unknown Webhook with 404, 50006 Cannot send an
  empty message, 50035 Invalid Form Body with 400)
- https://discord.com/developers/docs/topics/rate-limits (429 with
  Retry-After and a JSON body with retry_after)

Usage: discord_server.py PORT OUT PATH [THROTTLE_FIRST]
"""
import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, PATH = int(sys.argv[1]), sys.argv[2], sys.argv[3]
THROTTLE = [int(sys.argv[4]) if len(sys.argv) > 4 else 0]


def problems(message):
    if not isinstance(message, dict):
        return ["body is not an object"]
    embeds = message.get("embeds") or []
    if not message.get("content") and not embeds:
        return ["empty"]
    errors = []
    if len(embeds) > 10:
        errors.append("embeds: at most 10")
    for i, embed in enumerate(embeds):
        total = 0
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key)
            if value is not None:
                if not isinstance(value, str) or len(value) > limit:
                    errors.append(f"embeds[{i}].{key}: at most {limit} characters")
                else:
                    total += len(value)
        fields = embed.get("fields", [])
        if len(fields) > 25:
            errors.append(f"embeds[{i}].fields: at most 25")
        for j, field in enumerate(fields):
            name, value = field.get("name"), field.get("value")
            if not isinstance(name, str) or not name or len(name) > 256:
                errors.append(f"embeds[{i}].fields[{j}].name: 1 to 256 characters")
            if not isinstance(value, str) or not value or len(value) > 1024:
                errors.append(f"embeds[{i}].fields[{j}].value: 1 to 1024 characters")
            total += len(name or "") + len(value or "")
        if total > 6000:
            errors.append(f"embeds[{i}]: more than 6000 characters")
        ts = embed.get("timestamp")
        if ts is not None:
            try:
                datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
            except (AttributeError, ValueError):
                errors.append(f"embeds[{i}].timestamp: ISO 8601")
        if "color" in embed and not isinstance(embed["color"], int):
            errors.append(f"embeds[{i}].color: an integer")
    return errors


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if body is not None:
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
            return self.answer(429, {"message": "You are being rate limited.", "retry_after": 1.0, "global": False},
                               [("Retry-After", "1")])
        if self.path.split("?")[0] != PATH:
            return self.answer(404, {"message": "Unknown Webhook", "code": 10015})
        try:
            message = json.loads(raw)
        except ValueError:
            return self.answer(400, {"message": "Invalid Form Body", "code": 50035})
        errors = problems(message)
        if errors == ["empty"]:
            return self.answer(400, {"message": "Cannot send an empty message", "code": 50006})
        if errors:
            return self.answer(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})
        with open(OUT, "a") as out:
            out.write(json.dumps(message) + "\n")
        self.answer(204)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
