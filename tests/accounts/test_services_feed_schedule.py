"""accounts/services/feed_schedule.py: every way of connecting an account queues
its first feed sync once the connection commits (never for one that rolls back,
never failing it when the broker is down), and the owner hears once about a feed
that has gone without a good sync for a few periods."""

import logging
from datetime import timedelta
from unittest import mock

import pytest
import responses
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import AlertState, FeedSnapshot, InstagramAccount, Invite
from accounts.services import feed_schedule, imports, invites, signin
from accounts.services.accounts import account_disconnect
from tests import instagram_fakes as fakes
from tests.accounts.connect_support import instagram_login
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("agent_settings")]


@pytest.fixture
def queued():
    """The first-sync tasks sent to the broker: (args, kwargs) of each apply_async."""
    with mock.patch.object(feed_schedule.sync_feed_task, "apply_async") as apply_async:
        yield apply_async


def sent(apply_async) -> list[tuple]:
    return [c.kwargs["args"] for c in apply_async.call_args_list]


# --- The first sync -------------------------------------------------------------------------


def test_signing_in_queues_a_forced_first_sync_after_commit(
    queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = signin.account_sign_in(login=instagram_login())
        assert sent(queued) == []  # nothing before the commit
    assert sent(queued) == [(result.account.pk, True)]
    assert queued.call_args.kwargs["retry"] is False  # one quick try: a person waits


def test_connecting_another_account_and_an_invite_queue_it_too(
    queued, django_capture_on_commit_callbacks, django_user_model
):
    owner = django_user_model.objects.create(username="owner")
    invite = invites.invite_create(created_by=owner)
    with django_capture_on_commit_callbacks(execute=True):
        first = signin.account_connect(login=instagram_login(), connected_by=owner)
        second = signin.account_connect_by_invite(
            login=instagram_login(username="client_one", user_id="17841499999999999"),
            invite=invite,
        )
    assert sent(queued) == [(first.account.pk, True), (second.account.pk, True)]


def test_an_import_queues_one_sync_per_account(
    ig, queued, django_capture_on_commit_callbacks, settings
):
    ig.add(responses.GET, fakes.ME_URL, json=fakes.me(user_id="17841400000000001"))
    ig.add(
        responses.GET,
        fakes.ME_URL,
        json=fakes.me(user_id="17841400000000002", username="acme_studio", app_scoped_id="2"),
    )
    fakes.register_refresh(ig)
    fakes.register_refresh(ig)
    with django_capture_on_commit_callbacks(execute=True):
        results = imports.accounts_import(
            tokens=[
                ("a", "IGAAfirstTokenfirstToken001", "a"),
                ("b", "IGAAsecondToken00000002", "b"),
            ]
        )
    assert sorted(sent(queued)) == sorted((r.account.pk, True) for r in results)


def test_a_connection_that_rolls_back_queues_nothing(queued, django_capture_on_commit_callbacks):
    invite = invites.invite_create(created_by=None)
    Invite.objects.filter(pk=invite.pk).update(used_at=timezone.now())  # used meanwhile
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(invites.InviteError):
            signin.account_connect_by_invite(login=instagram_login(), invite=invite)
    assert not InstagramAccount.objects.exists()
    assert sent(queued) == []


def test_a_broker_outage_never_fails_the_sign_in(
    queued, django_capture_on_commit_callbacks, caplog
):
    queued.side_effect = OperationalError("Error 111 connecting to 127.0.0.1:6379.")
    with caplog.at_level(logging.WARNING, logger="accounts.services.feed_schedule"):
        with django_capture_on_commit_callbacks(execute=True):
            result = signin.account_sign_in(login=instagram_login())
    assert result.account.status == "active" and result.user is not None
    assert "could not queue the first feed sync" in caplog.text
    assert "the next beat tick reads it" in caplog.text
    # It is due, so beat's next tick queues it.
    from accounts.selectors.feed_status import feed_accounts_due

    assert result.account in feed_accounts_due()


def test_the_tick_queues_one_plain_task_per_account():
    with mock.patch.object(feed_schedule.sync_feed_task, "delay") as delay:
        assert feed_schedule.feed_sync_queue(account_ids=[3, 1]) == 2
    assert [c.args for c in delay.call_args_list] == [(3, False), (1, False)]


# --- The stale-feed alert ---------------------------------------------------------------


@pytest.fixture
def check(settings, django_capture_on_commit_callbacks):
    """Run the stale-feed check as the tick does; the alerts' on-commit dispatch
    runs, and with the broker down they are delivered inline, into the outbox."""
    settings.ALERT_EMAIL = ["owner@example.com"]
    settings.ALERT_WEBHOOK_URL = ""
    settings.CSRF_TRUSTED_ORIGINS = ["https://agent.example.com"]

    def run(what=feed_schedule.alerts_check_feeds):
        with django_capture_on_commit_callbacks(execute=True):
            return what()

    with mock.patch("accounts.alerts.send_alert_task.delay", side_effect=OperationalError("x")):
        yield run


def old_feed(slug, *, synced_hours_ago, error="", **fields):
    account = make_account(slug=slug, username=slug.replace("-", "_"), **fields)
    now = timezone.now()
    FeedSnapshot.objects.create(
        account=account,
        posts=[{"id": "1"}],
        synced_at=now - timedelta(hours=synced_hours_ago) if synced_hours_ago else None,
        attempted_at=now - timedelta(minutes=10),
        last_error=error,
        last_error_at=now - timedelta(minutes=10) if error else None,
    )
    FeedSnapshot.objects.filter(account=account).update(created_at=now - timedelta(days=3))
    return account


def test_a_feed_a_few_periods_old_alerts_once(check):
    old_feed("old-one", synced_hours_ago=3, error="Instagram answered HTTP 500 (code 2)")
    old_feed("fresh-one", synced_hours_ago=0.2)
    old_feed("young-stale", synced_hours_ago=1.5, error="HTTP 500")  # 3 periods: not yet

    assert check() == 1
    assert check() == 0  # once per condition
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject.startswith("tokenagent: the feed of @old_one (old-one) is 3")
    assert "Websites keep showing the last good copy, marked stale." in message.body
    assert "Instagram answered HTTP 500 (code 2)" in message.body
    assert "every 30 minutes" in message.body
    assert "sync_feeds old-one" in message.body


def test_the_alert_clears_when_the_feed_is_read_and_comes_back_if_it_ages_again(check):
    account = old_feed("old-one", synced_hours_ago=3, error="HTTP 500")
    assert check() == 1
    FeedSnapshot.objects.filter(account=account).update(
        synced_at=timezone.now(), last_error="", last_error_at=None
    )
    assert check() == 0
    state = AlertState.objects.get(key=feed_schedule.feed_stale_key(account))
    assert state.cleared_at is not None
    FeedSnapshot.objects.filter(account=account).update(
        synced_at=timezone.now() - timedelta(hours=5)
    )
    assert check() == 1
    assert len(mail.outbox) == 2
    assert "the syncs are not running" in mail.outbox[1].body  # no error: no worker


def test_a_feed_never_read_alerts_once_it_tried_for_a_few_periods(check):
    old_feed("never-one", synced_hours_ago=None, error="Instagram answered HTTP 503")
    make_account(slug="untried", username="untried")  # no attempt yet: nothing to say
    InstagramAccount.objects.filter(slug="untried").update(
        created_at=timezone.now() - timedelta(days=90)
    )
    assert check() == 1
    assert (
        mail.outbox[0].subject
        == "tokenagent: the feed of @never_one (never-one) has never been read"
    )
    assert "an empty feed" in mail.outbox[0].body


def test_disconnected_and_reconnect_accounts_are_not_alerted_and_their_alert_clears(check):
    account = old_feed("old-one", synced_hours_ago=3, error="HTTP 500")
    old_feed("lost-one", synced_hours_ago=3, error="190", status="needs_reconnect")
    assert check() == 1
    account_disconnect(account=account)
    assert check() == 0
    assert AlertState.objects.get(key=feed_schedule.feed_stale_key(account)).cleared_at


def test_the_tick_checks_the_feeds(check):
    old_feed("old-one", synced_hours_ago=3, error="HTTP 500")
    from accounts.services.refresher import refresher_tick

    check(refresher_tick)
    assert len(mail.outbox) == 1 and "old-one" in mail.outbox[0].subject


def test_the_alert_never_carries_a_token(check):
    token = "IGAAsecretTokenInTheError000000001"
    old_feed("old-one", synced_hours_ago=3, error=f"bad {token}", token=token)
    check()
    assert token not in mail.outbox[0].body and token not in mail.outbox[0].subject
