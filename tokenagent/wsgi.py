"""The WSGI application the web server loads: Django's handler behind the fast
path (``accounts.fastpath``), which answers the public token and feed reads from
the served entries and hands every other request to Django unchanged."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenagent.settings")

django_application = get_wsgi_application()

from accounts.fastpath import FastPath  # noqa: E402 (needs the apps loaded)

application = FastPath(django_application)
