#!/usr/bin/env python3
"""A stand-in for a Microsoft Teams Workflows webhook that checks each
message as Microsoft documents it, and answers as the flow's trigger does.

The rules come from Microsoft's public documentation:
- https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
  (a message: {"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": <card>}]}; the
  Workflows trigger answers 202 Accepted)
- https://adaptivecards.io/explorer/AdaptiveCard.html, TextBlock.html,
  FactSet.html (type AdaptiveCard, a version, a body of elements; a
  TextBlock has text; a FactSet has facts of title and value strings;
  colors Default, Dark, Light, Accent, Good, Warning, Attention)

Usage: teams_server.py PORT OUT PATH [THROTTLE_FIRST]
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, PATH = int(sys.argv[1]), sys.argv[2], sys.argv[3]
THROTTLE = [int(sys.argv[4]) if len(sys.argv) > 4 else 0]
COLORS = {"Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention"}


def problems(message):
    if not isinstance(message, dict) or message.get("type") != "message":
        return ["type must be message"]
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return ["attachments required"]
    errors = []
    for a in attachments:
        if a.get("contentType") != "application/vnd.microsoft.card.adaptive":
            errors.append("contentType must be application/vnd.microsoft.card.adaptive")
            continue
        card = a.get("content") or {}
        if card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
            errors.append("content must be an AdaptiveCard with a version")
        for element in card.get("body", []):
            kind = element.get("type")
            if kind == "TextBlock":
                if not isinstance(element.get("text"), str) or not element["text"]:
                    errors.append("TextBlock.text required")
                if "color" in element and element["color"] not in COLORS:
                    errors.append("TextBlock.color unknown")
            elif kind == "FactSet":
                for fact in element.get("facts", []):
                    if not isinstance(fact.get("title"), str) or not isinstance(fact.get("value"), str):
                        errors.append("Fact title and value must be strings")
            else:
                errors.append(f"unexpected element {kind!r}")
    return errors


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, text="", headers=()):
        data = text.encode()
        self.send_response(status)
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
            return self.answer(429, '{"error":{"code":"WorkflowRequestsThrottled"}}', [("Retry-After", "1")])
        if self.path.split("?")[0] != PATH:
            return self.answer(404, '{"error":{"code":"WorkflowNotFound","message":"The workflow was not found."}}')
        try:
            message = json.loads(raw)
        except ValueError:
            return self.answer(400, '{"error":{"code":"InvalidRequestContent"}}')
        errors = problems(message)
        if errors:
            return self.answer(400, json.dumps({"error": {"code": "InvalidRequestContent", "message": "; ".join(errors)}}))
        with open(OUT, "a") as out:
            out.write(json.dumps(message) + "\n")
        self.answer(202)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
