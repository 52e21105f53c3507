"""HTTP round trip: GET a URL and expect status 200 and a body.

Args: [URL] [EXPECTED_BODY]. Without a URL the check serves itself on the
sandbox's own loopback (the default policy gives it no other network), so it
is deterministic and shows the HTTP stack works inside the sandbox. Given a
URL the sandbox cannot reach, it reports crit with the connection error.

Not named http.py: as with `python script.py`, the script's directory comes
first on sys.path, and http.py would shadow the standard http package.
"""
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import cordon

expected = sys.argv[2] if len(sys.argv) > 2 else "pong"


class Pong(BaseHTTPRequestHandler):
    def do_GET(self):
        body = expected.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # keep stderr for real errors


def serve_loopback():
    server = HTTPServer(("127.0.0.1", 0), Pong)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/ping"


url = sys.argv[1] if len(sys.argv) > 1 else serve_loopback()
started = time.monotonic()
try:
    with urllib.request.urlopen(url, timeout=3) as response:
        status, body = response.status, response.read().decode(errors="replace")
except OSError as e:
    cordon.result("crit", f"GET {url} failed: {e}")
    sys.exit(0)
latency_ms = round((time.monotonic() - started) * 1000, 2)
print(f"GET {url} -> {status} {body[:80]!r}")
if status == 200 and body == expected:
    cordon.result("ok", f"GET {url} -> 200 in {latency_ms} ms", metrics={"latency_ms": latency_ms})
else:
    cordon.result("crit", f"GET {url} -> {status}, body {body[:80]!r} (expected {expected!r})", metrics={"latency_ms": latency_ms})
