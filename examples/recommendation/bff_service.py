#!/usr/bin/env python3
"""bff-service: the front end. `/` renders an HTML page with the recommended movie, `/api`
serves JSON. It calls http://recommendation-service:8080/ by name and forwards the trace
headers it received. Standard library only, no mesh code: urllib uses HTTP_PROXY when the
environment sets it (weft's loopback mode points it at the workload's sidecar).
"""
import html
import http.server
import json
import os
import urllib.request

RECOMMENDATION = os.environ.get("RECOMMENDATION_URL", "http://recommendation-service:8080/")
TRACE_HEADERS = ("x-request-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled")


def recommend(incoming):
    req = urllib.request.Request(RECOMMENDATION, headers={h: incoming[h] for h in TRACE_HEADERS if incoming.get(h)})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {"error": e.read().decode(errors="replace").strip()}
    except OSError as e:
        return 502, {"error": str(e)}


class Handler(http.server.BaseHTTPRequestHandler):
    # Headers and body are two writes: without TCP_NODELAY the body waits for the
    # peer's delayed ACK (40 ms) on every keep-alive response.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        status, rec = recommend(self.headers)
        if self.path.startswith("/api"):
            self.reply(status, "application/json", json.dumps({"service": "bff-service", "recommendation": rec}).encode())
            return
        movie = html.escape(str(rec.get("movie", rec.get("error", "?"))))
        version = html.escape(str(rec.get("version", "-")))
        page = f"<!doctype html><title>weft demo</title><h1>Tonight: {movie}</h1><p>recommendation-service {version}</p>"
        self.reply(200 if status == 200 else 502, "text/html; charset=utf-8", page.encode())

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()
