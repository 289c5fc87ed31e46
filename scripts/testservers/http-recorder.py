#!/usr/bin/env python3
"""A local HTTP receiver for the notification tests.

Listens on a free loopback port, prints "PORT <n>" on stdout, and appends
every request to OUTFILE as one JSON line: method, path (with query),
headers (names lowercased) and body (UTF-8 text). Answers 200 "ok", or the
status N for a path under /status/N/ (to test retries and refusals).
Runs until killed or until its stdin closes.

    http-recorder.py OUTFILE
"""
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUT = sys.argv[1]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK, open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        m = re.match(r"^/status/(\d{3})/", self.path)
        status = int(m.group(1)) if m else 200
        reply = b"ok" if status == 200 else b"nope"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
# The test holds our stdin; when it goes away (the test ended, even by a
# panic), so do we.
sys.stdin.read()
server.shutdown()
