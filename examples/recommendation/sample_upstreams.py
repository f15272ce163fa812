#!/usr/bin/env python3
"""Two stand-ins for recommendation-service v1 and v2, at the endpoint addresses that
service-entries.yaml declares (127.0.0.1:9001 and 127.0.0.2:9002), so that
`weft proxy --config examples/recommendation/` has something to route to.

Standard library only. Each answers every GET with one line naming its version and
echoing the request id the proxy added. Stop with Ctrl-C.
"""
import http.server
import threading

ENDPOINTS = [("v1", "127.0.0.1", 9001, "recommendation v1: The Shawshank Redemption"),
             ("v2", "127.0.0.2", 9002, "recommendation v2: Doctor Strange")]


def handler(answer):
    class Handler(http.server.BaseHTTPRequestHandler):
        # Headers and body are two writes: without TCP_NODELAY the body waits for the
        # peer's delayed ACK (40 ms) on every keep-alive response.
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = f"{answer} (x-request-id {self.headers.get('x-request-id', '-')})\n".encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main():
    servers = []
    for version, host, port, answer in ENDPOINTS:
        server = http.server.ThreadingHTTPServer((host, port), handler(answer))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        print(f"recommendation-service {version} on {host}:{port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
