"""Per-request cost of each endpoint inside one process, no server, no network,
best of 5 runs: the benchmark's WSGI application (the agent's fast path in front of
Django's handler with the full middleware stack), and, for comparison, the same
token, feed and picture URLs through Django's handler alone. Run by
``python -m bench.token_endpoints`` in the benchmark's environment (seeded DB);
less sensitive to a busy machine than the HTTP figures."""

import io
import json
import sys
import time

import django


def main(n: int = 4000) -> None:
    django.setup()
    from bench.token_endpoints.wsgi import application as app
    from tokenagent.wsgi import django_application

    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(headers)

    def call(handler, path: str, **extra) -> bytes:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
        }
        environ.update(extra)
        result = handler(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
        return body

    call(app, "/token/bench.json")
    etag = seen["headers"]["ETag"]
    sizes = json.loads(call(app, "/feed/bench.json"))["posts"][0]["image"]["sizes"]
    image = "/" + next(s["url"] for s in sizes if s["width"] == 640).split("/", 3)[3]
    gz = {"HTTP_ACCEPT_ENCODING": "gzip"}
    endpoints = [
        ("hello", app, "/bench/hello", {}, 200),
        ("bare", app, "/bench/bare.json", {}, 200),
        ("django-json", django_application, "/token/bench.json", {}, 200),
        ("json", app, "/token/bench.json", {}, 200),
        ("js", app, "/token/bench.js", {}, 200),
        ("304", app, "/token/bench.json", {"HTTP_IF_NONE_MATCH": etag}, 304),
        ("django-feed-gz", django_application, "/feed/bench.json", gz, 200),
        ("feed", app, "/feed/bench.json", {}, 200),
        ("feed-gz", app, "/feed/bench.json", gz, 200),
        ("django-img", django_application, image, {}, 200),
        ("img", app, image, {}, 200),
    ]
    for _, handler, path, extra, expect in endpoints:
        call(handler, path, **extra)
        assert seen["status"] == expect, (path, seen["status"])
    best = {name: float("inf") for name, *_ in endpoints}
    for _ in range(5):  # interleaved, best of 5
        for name, handler, path, extra, _ in endpoints:
            start = time.perf_counter()
            for _ in range(n // 5):
                call(handler, path, **extra)
            best[name] = min(best[name], (time.perf_counter() - start) / (n // 5) * 1e6)
    json.dump(best, sys.stdout)


if __name__ == "__main__":
    main()
