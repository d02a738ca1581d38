#!/usr/bin/env python3
"""A stand-in for a Slack incoming webhook that checks each message as Slack
documents it, and answers as Slack does.

The rules come from Slack's public documentation:
- https://api.slack.com/messaging/webhooks (POST JSON to the webhook URL;
  200 with body "ok"; errors as short text bodies: 400 invalid_payload,
  400 no_text, 403 action_prohibited, 404 no_service, 410
  channel_is_archived; 429 with Retry-After when rate limited)
- https://api.slack.com/reference/block-kit/blocks (header: plain_text at
  most 150 characters; section: text at most 3000 characters or fields, at
  most 10, each at most 2000; context: 1 to 10 elements, each a text object
  or an image; at most 50 blocks)
- https://api.slack.com/reference/messaging/payload (`text` is the
  fallback shown in notifications when blocks are given)

Usage: slack_server.py PORT OUT PATH [THROTTLE_FIRST]
Each accepted message is appended to OUT as one JSON line. Only PATH (the
secret part of a real webhook URL) is a webhook; anything else is 404
no_service. The first THROTTLE_FIRST requests get 429 with Retry-After: 1.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, PATH = int(sys.argv[1]), sys.argv[2], sys.argv[3]
THROTTLE = [int(sys.argv[4]) if len(sys.argv) > 4 else 0]


def text_object(obj, kinds, limit, where):
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        return [f"{where}: a text object of type {'/'.join(kinds)}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text or len(text) > limit:
        return [f"{where}: text must be 1 to {limit} characters"]
    return []


def problems(message):
    if not isinstance(message, dict):
        return ["invalid_payload"]
    blocks = message.get("blocks")
    if "text" not in message and not blocks:
        return ["no_text"]
    errors = []
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return ["invalid_blocks"]
        for i, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "header":
                errors += text_object(block.get("text"), ["plain_text"], 150, f"blocks[{i}].text")
            elif kind == "section":
                if "text" in block:
                    errors += text_object(block["text"], ["plain_text", "mrkdwn"], 3000, f"blocks[{i}].text")
                fields = block.get("fields")
                if fields is not None:
                    if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                        errors.append(f"blocks[{i}].fields: 1 to 10")
                    else:
                        for j, field in enumerate(fields):
                            errors += text_object(field, ["plain_text", "mrkdwn"], 2000, f"blocks[{i}].fields[{j}]")
                if "text" not in block and fields is None:
                    errors.append(f"blocks[{i}]: a section needs text or fields")
            elif kind == "context":
                elements = block.get("elements")
                if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                    errors.append(f"blocks[{i}].elements: 1 to 10")
                else:
                    for j, element in enumerate(elements):
                        errors += text_object(element, ["plain_text", "mrkdwn"], 3000, f"blocks[{i}].elements[{j}]")
            else:
                errors.append(f"blocks[{i}]: unknown block type {kind!r}")
    return ["invalid_blocks"] + errors if errors else []


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, text, headers=()):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
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
            return self.answer(429, "rate_limited", [("Retry-After", "1")])
        if self.path != PATH:
            return self.answer(404, "no_service")
        try:
            message = json.loads(raw)
        except ValueError:
            return self.answer(400, "invalid_payload")
        errors = problems(message)
        if errors:
            return self.answer(400, errors[0] + (": " + "; ".join(errors[1:]) if errors[1:] else ""))
        with open(OUT, "a") as out:
            out.write(json.dumps(message) + "\n")
        self.answer(200, "ok")

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
