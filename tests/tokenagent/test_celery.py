"""The Celery app takes its configuration from the CELERY_* Django settings, and a
worker keeps Django's redacting log configuration."""

from django.conf import settings

from tests.child_python import BASE_DIR, child_env, run_python
from tokenagent.celery import app


def test_the_app_reads_the_celery_settings():
    conf = app.conf
    assert conf.broker_url == settings.CELERY_BROKER_URL
    assert str(conf.timezone) == "UTC"  # celery-types say tzinfo; it holds the setting
    assert conf.worker_hijack_root_logger is False


def test_a_task_whose_worker_dies_is_delivered_again():
    # acks_late + reject_on_worker_lost: the message is acknowledged after the task
    # ran, and handed back if the process running it is killed.
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    # One message at a time, so a dying worker holds no reserved backlog.
    assert app.conf.worker_prefetch_multiplier == 1


def test_only_json_is_sent_and_accepted_and_no_results_are_kept():
    assert app.conf.task_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]
    assert app.conf.task_ignore_result is True
    assert app.conf.result_backend is None


def test_time_limits_fit_inside_the_visibility_timeout_and_outlast_http_timeouts():
    soft, hard = app.conf.task_soft_time_limit, app.conf.task_time_limit
    # Redis hands an unacknowledged message to another worker after the visibility
    # timeout (one hour unless configured): a task must be dead well before that.
    visibility = (app.conf.broker_transport_options or {}).get("visibility_timeout", 3600)
    assert 0 < soft < hard < visibility
    # A refresh is never cut off in the middle of one Instagram call.
    assert soft > settings.INSTAGRAM_CONNECT_TIMEOUT + settings.INSTAGRAM_READ_TIMEOUT


def test_beat_schedule_has_one_entry_for_refresh_due_accounts():
    schedule = app.conf.beat_schedule
    assert len(schedule) == 1
    (entry,) = schedule.values()
    assert entry["task"] == "accounts.tasks.refresh_due_accounts"
    assert entry["schedule"] == settings.REFRESH_TICK_SECONDS
    # A stale tick is dropped rather than run late, ahead of the refreshes it queued.
    assert entry["options"]["expires"] == settings.REFRESH_TICK_SECONDS
    # The name points at a real task.
    app.loader.import_default_modules()
    assert "accounts.tasks.refresh_due_accounts" in app.tasks


def test_feed_syncs_have_their_own_queue_and_every_worker_line_consumes_both():
    app.loader.import_default_modules()
    router = app.amqp.router
    assert router.route({}, "accounts.tasks.sync_feed")["queue"].name == settings.FEED_QUEUE
    for task in ("refresh_account", "refresh_due_accounts", "send_alert"):
        queue = router.route({}, f"accounts.tasks.{task}")["queue"].name
        assert queue == settings.CELERY_TASK_DEFAULT_QUEUE != settings.FEED_QUEUE
    # A worker started without --queues consumes both (both are declared) ...
    assert set(app.amqp.queues) == {settings.CELERY_TASK_DEFAULT_QUEUE, settings.FEED_QUEUE}
    # ... and the Procfiles' workers name them.
    both = f"--queues {settings.CELERY_TASK_DEFAULT_QUEUE},{settings.FEED_QUEUE} "
    for procfile in ("Procfile", "Procfile.dev"):
        (worker,) = [
            line
            for line in (BASE_DIR / procfile).read_text().splitlines()
            if line.startswith("worker:")
        ]
        assert both in worker, (procfile, worker)


PROBE = r"""
import logging, os, threading
from celery.signals import worker_ready
from celery.utils.log import get_task_logger
from tokenagent.celery import app

TOKEN = "EAAGworkerLogProbeToken0123456789"

@worker_ready.connect
def probe(**kwargs):
    get_task_logger("accounts.tasks").warning("task logger access_token=%s", TOKEN)
    logging.getLogger("accounts.services").warning("module logger %s", "access_token=" + TOKEN)
    logging.getLogger("celery.worker").warning("celery logger access_token=%s", TOKEN)
    threading.Timer(0.5, lambda: os._exit(0)).start()

app.worker_main(["worker", "--pool=solo", "--loglevel=INFO", "--without-mingle",
                 "--without-gossip", "--without-heartbeat", "--queues=log-probe"])
"""


def test_a_worker_logs_through_the_redacting_configuration(tmp_path):
    env = child_env(tmp_path / "var", SECRET_KEY="celery-test-secret-key", REDIS_URL="")
    result = run_python(PROBE, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for line in ("task logger", "module logger", "celery logger"):
        assert f"{line} access_token=[redacted]" in output, output
    assert "EAAGworkerLogProbeToken" not in output


def test_a_refresh_claim_outlives_the_task_that_holds_it():
    """Two workers never refresh one account at once: the claim on the account lasts
    longer than a task may run (hard limit) and than Instagram may take to answer."""
    from django.conf import settings

    assert settings.REFRESH_LOCK_SECONDS > settings.CELERY_TASK_TIME_LIMIT
    assert settings.REFRESH_LOCK_SECONDS > (
        settings.INSTAGRAM_CONNECT_TIMEOUT + settings.INSTAGRAM_READ_TIMEOUT
    )
