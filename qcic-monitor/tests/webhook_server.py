"""A real HTTP server for the webhook tests: answers FAIL_STATUS (default
500) to the first FAIL_FIRST requests, then 200, and appends every request
(headers and JSON body) to OUT as one JSON line.

Usage: python webhook_server.py PORT OUT FAIL_FIRST [FAIL_STATUS]
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, OUT, FAIL_FIRST = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
FAIL_STATUS = int(sys.argv[4]) if len(sys.argv) > 4 else 500
seen = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        global seen
        seen += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = FAIL_STATUS if seen <= FAIL_FIRST else 200
        with open(OUT, "a") as f:
            f.write(json.dumps({"n": seen, "status": status, "auth": self.headers.get("Authorization"),
                                "body": json.loads(body)}) + "\n")
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
