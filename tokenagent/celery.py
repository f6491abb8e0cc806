"""The Celery app: ``celery -A tokenagent worker --beat`` finds it here."""

import gc
import os

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenagent.settings")

app = Celery("tokenagent")
# Every CELERY_* Django setting configures Celery.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**kwargs: object) -> None:
    """Keep Django's LOGGING (stdout, tokens redacted) in worker and beat. Without a
    receiver here Celery adds its own handlers, e.g. one for task loggers that
    bypasses the redacting filter."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def _freeze_heap(**kwargs: object) -> None:
    """The worker forks its pool processes and the embedded beat from this process:
    freeze what is loaded by now, so the garbage collector in each child leaves the
    shared objects alone instead of copying their pages (the same as the web
    server's main process does in ``tokenagent.web``)."""
    gc.collect()
    gc.freeze()


@task_prerun.connect
@task_postrun.connect
def _drop_unusable_connections(sender: object = None, **kwargs: object) -> None:
    """Each pool thread keeps its database connection from task to task, as a web
    thread does from request to request: before and after each task, Django's own
    ``close_old_connections()`` closes only a connection that failed, was left in a
    transaction or is older than ``CONN_MAX_AGE`` (health checks then test the next
    one before it is used). Celery's Django fixup would otherwise close every
    connection twice per task (``CELERY_DB_REUSE_MAX`` in settings turns that off),
    and every refresh would pay a new connection. Eager tasks (tests) run inside the
    caller's transaction and are left alone."""
    request = getattr(sender, "request", None)
    if getattr(request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
