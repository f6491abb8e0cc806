"""Run the sandbox Instagram on its own port: ``manage.py sandbox_server --port 8765``.

It serves only the sandbox (under ``/sandbox/``), works with production settings
(DEBUG off) so production-mode tests can point INSTAGRAM_*_URL at it, needs no
database, and keeps its state in process memory unless ``--shared-cache`` asks
for the configured cache (so several sandbox processes on one Redis agree)."""

import socketserver
import sys

from django.conf import settings
from django.core.management.base import BaseCommand
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler


class _Server(ThreadedWSGIServer):
    # Benchmarks open many connections at once; socketserver's default backlog is 5.
    request_queue_size = 1024


class _Handler(WSGIRequestHandler):
    # wsgiref sends the headers and the body in two writes; with Nagle on, the body
    # waits for the client's delayed ACK of the headers: ~40 ms per keep-alive request.
    disable_nagle_algorithm = True


class Command(BaseCommand):
    help = "Run the sandbox Instagram standalone (threaded HTTP server)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--shared-cache",
            action="store_true",
            help="Keep sandbox state in the configured Django cache instead of memory.",
        )

    def handle(self, *args, host, port, shared_cache, **options):
        settings.ROOT_URLCONF = "accounts.sandbox.standalone_urls"
        settings.SECURE_SSL_REDIRECT = False  # plain HTTP on loopback, like a test double
        settings.ALLOWED_HOSTS = ["*"]
        # The sandbox answers CORS itself (like Instagram: "*"); django-cors-headers
        # would otherwise swallow browser preflights with an answer that allows nothing.
        settings.CORS_URLS_REGEX = r"^(?!/sandbox/)"
        # State in this process's memory (accounts/sandbox/state.py) unless shared.
        settings.SANDBOX_MEMORY_STATE = not shared_cache
        from django.core.wsgi import get_wsgi_application

        app = get_wsgi_application()
        socketserver.TCPServer.allow_reuse_address = True
        httpd = _Server((host, port), _Handler, ipv6=False)
        httpd.set_app(app)
        base = f"http://{host}:{httpd.server_address[1]}/sandbox"
        self.stdout.write(f"Sandbox Instagram listening on {base}")
        sys.stdout.flush()
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            httpd.server_close()
