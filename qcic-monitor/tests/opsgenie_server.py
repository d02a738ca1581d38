#!/usr/bin/env python3
"""A stand-in for Opsgenie's Alert API that checks each request as Opsgenie
documents it, and answers as Opsgenie does.

The rules come from Opsgenie's public documentation:
- https://docs.opsgenie.com/docs/authentication (header
  "Authorization: GenieKey <key>"; 401 "Could not authenticate")
- https://docs.opsgenie.com/docs/alert-api#create-alert (POST /v2/alerts:
  message required, at most 130 characters; alias at most 512;
  description at most 15000; tags, details, entity, source; priority P1 to
  P5; 202 {"result": "Request will be processed", "took", "requestId"};
  422 with "message" for a bad request)
- https://docs.opsgenie.com/docs/alert-api#close-alert (POST
  /v2/alerts/{identifier}/close?identifierType=alias; 202)
- https://docs.opsgenie.com/docs/api-rate-limiting (429)

Usage: opsgenie_server.py PORT OUT KEY [THROTTLE_FIRST]
Accepted requests are appended to OUT as JSON lines {"action", "alias", "body"}.
"""
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
THROTTLE = [int(sys.argv[4]) if len(sys.argv) > 4 else 0]


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body, headers=()):
        body.update({"took": 0.01, "requestId": "43a29c5c-3dbf-4fa4-9c26-f4f71023e120"})
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
            return self.answer(429, {"message": "You are making too many requests!"}, [("Retry-After", "1")])
        if self.headers.get("Authorization") != f"GenieKey {KEY}":
            return self.answer(401, {"message": "Could not authenticate"})
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.answer(422, {"message": "Invalid JSON"})
        path, _, query = self.path.partition("?")
        if path == "/v2/alerts":
            message = body.get("message")
            if not isinstance(message, str) or not message.strip():
                return self.answer(422, {"message": "Message can not be empty."})
            if len(message) > 130:
                return self.answer(422, {"message": "Message can not be longer than 130 characters."})
            alias = body.get("alias", "")
            if len(alias) > 512 or len(body.get("description", "")) > 15000:
                return self.answer(422, {"message": "alias or description too long"})
            if body.get("priority", "P3") not in ("P1", "P2", "P3", "P4", "P5"):
                return self.answer(422, {"message": "Priority should be one of P1, P2, P3, P4, P5"})
            if not isinstance(body.get("tags", []), list) or not isinstance(body.get("details", {}), dict):
                return self.answer(422, {"message": "tags must be a list, details an object"})
            record = {"action": "create", "alias": alias, "body": body}
        else:
            m = re.fullmatch(r"/v2/alerts/([^/]+)/close", path)
            if not m or query != "identifierType=alias":
                return self.answer(404, {"message": "Not found"})
            record = {"action": "close", "alias": m.group(1), "body": body}
        with open(OUT, "a") as out:
            out.write(json.dumps(record) + "\n")
        self.answer(202, {"result": "Request will be processed"})

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
