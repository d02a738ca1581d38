#!/usr/bin/env python3
"""A stand-in for PagerDuty's Events API v2 that checks each request as the
service documents it, and answers as the service does.

The rules come from PagerDuty's public documentation:
- https://developer.pagerduty.com/docs/events-api-v2/overview/
- https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
- https://developer.pagerduty.com/docs/events-api-v2/resolve-events/
- https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty
  (responses: 202 with status/message/dedup_key; 400 "invalid event" with
  errors; 429 when events arrive too quickly)

Usage: pagerduty_server.py PORT OUT ROUTING_KEY [THROTTLE_FIRST]
Each accepted event is appended to OUT as one JSON line. The first
THROTTLE_FIRST requests get 429 with Retry-After: 1.
"""
import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
THROTTLE = [int(sys.argv[4]) if len(sys.argv) > 4 else 0]
SEVERITIES = {"critical", "error", "warning", "info"}


def problems(event):
    """What breaks the documented schema (empty: the event is valid)."""
    errors = []
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    if event.get("routing_key") != KEY:
        errors.append("'routing_key' is invalid")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' must be trigger, acknowledge or resolve")
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or len(key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not key:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return errors + ["'payload' is missing or not an object"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            errors.append("'payload.summary' must be 1 to 1024 characters")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            errors.append("'payload.source' is required")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' must be critical, error, warning or info")
        ts = payload.get("timestamp")
        if ts is not None:
            try:
                datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
            except (AttributeError, ValueError):
                errors.append("'payload.timestamp' must be ISO 8601")
        for field in ("component", "group", "class"):
            if field in payload and not isinstance(payload[field], str):
                errors.append(f"'payload.{field}' must be a string")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
    return errors


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body, headers=()):
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
            return self.answer(429, {"status": "throttle event",
                                     "message": "Requests for this service are arriving too quickly. Please retry later."},
                               [("Retry-After", "1")])
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self.answer(400, {"status": "invalid event", "message": "Event object is invalid",
                                     "errors": ["Content-Type must be application/json"]})
        try:
            event = json.loads(raw)
        except ValueError:
            return self.answer(400, {"status": "invalid event", "message": "Event object is invalid",
                                     "errors": ["body is not JSON"]})
        errors = problems(event)
        if errors:
            return self.answer(400, {"status": "invalid event", "message": "Event object is invalid",
                                     "errors": errors})
        with open(OUT, "a") as out:
            out.write(json.dumps(event) + "\n")
        self.answer(202, {"status": "success", "message": "Event processed",
                          "dedup_key": event.get("dedup_key") or "generated"})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
