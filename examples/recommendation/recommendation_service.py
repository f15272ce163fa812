#!/usr/bin/env python3
"""recommendation-service: recommends a movie. v1 and v2 answer differently (v2: Doctor Strange).

Standard library only, no mesh code: it listens on HOST:PORT (environment, default
127.0.0.1:8080) and knows its VERSION from the environment.
"""
import http.server
import json
import os

VERSION = os.environ.get("VERSION", "v1")
MOVIES = {"v1": "The Shawshank Redemption", "v2": "Doctor Strange"}
TRACE_HEADERS = ("x-request-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled")


class Handler(http.server.BaseHTTPRequestHandler):
    # Headers and body are two writes: without TCP_NODELAY the body waits for the
    # peer's delayed ACK (40 ms) on every keep-alive response.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({
            "service": "recommendation-service",
            "version": VERSION,
            "movie": MOVIES.get(VERSION, "Metropolis"),
            # The name the caller used: with weft it is the plain service name.
            "host": self.headers.get("host"),
            "trace": {h: self.headers[h] for h in TRACE_HEADERS if self.headers.get(h)},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()
