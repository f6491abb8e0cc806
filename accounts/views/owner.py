"""The home page, the owner's pages (dashboard, account, invites, import, setup) and
the client's invite pages.

Paths: ``/`` (dashboard for owners, a sign-in button for visitors),
``/accounts/<slug>/`` and its POST actions (``disconnect/``, ``rename/``,
``default/``, ``reveal/``, ``feed-only/``), ``POST /connect/`` (connect another account or
reconnect one), ``/invites/``, ``/invite/<signed>/`` (public) and
``/invite/thanks/``, ``/import/`` (paste a token), ``/setup/``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import crypto
from accounts.forms import FeedOnlyForm, InviteForm, RenameForm, TokenImportForm
from accounts.models import InstagramAccount, Invite, OAuthState
from accounts.permissions import is_owner, owner_required
from accounts.selectors import dashboard
from accounts.services import accounts as account_svc
from accounts.services import feed as feed_svc
from accounts.services import imports as import_svc
from accounts.services import invites as invite_svc
from accounts.views.oauth import INVITE_THANKS_SESSION_KEY, authorization_start, sign_in_failure

logger = logging.getLogger(__name__)


def _origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


# --- Home and dashboard --------------------------------------------------------------------------


@never_cache
def home(request: HttpRequest) -> HttpResponse:
    """Owners get the dashboard; anyone else only a sign-in button (nothing at all
    with ``HIDE_HELP_PAGES``)."""
    if is_owner(request.user):
        return render(
            request,
            "accounts/dashboard.html",
            {"rows": dashboard.dashboard_accounts(), "invites_active": _active_invites()},
        )
    if request.user.is_authenticated:
        return render(request, "accounts/not_owner.html", status=403)
    if settings.HIDE_HELP_PAGES:
        raise Http404("Nothing here.")
    return render(request, "accounts/home.html")


def _active_invites() -> int:
    return sum(1 for row in dashboard.invites_list() if row.state == "active")


@owner_required
@never_cache
def account_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _account_page(request, slug)


def _account_page(
    request: HttpRequest, slug: str, *, rename_form: RenameForm | None = None, status: int = 200
) -> HttpResponse:
    """The account's page; ``rename_form`` is a refused rename to show with its errors."""
    row = dashboard.dashboard_account(slug=slug)
    if row is None:
        raise Http404("No such account.")
    account = row.account
    context = {
        "row": row,
        "account": account,
        "rename_form": rename_form or RenameForm(initial={"slug": account.slug}),
        "feed_only_form": FeedOnlyForm(initial={"feed_only": account.feed_only}),
    }
    return render(request, "accounts/account_detail.html", context, status=status)


@owner_required
@require_POST
def connect_start(request: HttpRequest) -> HttpResponse:
    """Connect another account, or reconnect one (Instagram decides which account
    comes back: the one signed in on Instagram's page)."""
    return authorization_start(request, purpose=OAuthState.Purpose.CONNECT, user=request.user)


@owner_required
@require_POST
def account_disconnect(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_object_or_404(InstagramAccount, slug=slug)
    account_svc.account_disconnect(account=account)
    messages.success(
        request,
        f"Disconnected @{account.username}: its token was deleted and {account.slug} is no "
        "longer served. Reconnect it to serve it again.",
    )
    return HttpResponseRedirect(reverse("accounts:home"))


@owner_required
@require_POST
def account_rename(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_object_or_404(InstagramAccount, slug=slug)
    form = RenameForm(request.POST)
    if form.is_valid():
        old = account.slug
        try:
            account_svc.account_rename(account=account, slug=form.cleaned_data["slug"])
        except account_svc.SlugError as exc:
            form.add_error("slug", str(exc))
        else:
            messages.success(
                request,
                f"Renamed {old} to {account.slug}. Update your sites: "
                f"/token/{old}… no longer answers.",
            )
            return HttpResponseRedirect(reverse("accounts:account", args=[account.slug]))
    return _account_page(request, slug, rename_form=form, status=400)


@owner_required
@require_POST
def account_make_default(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_object_or_404(InstagramAccount, slug=slug)
    account_svc.account_set_default(account=account)
    messages.success(request, f"{account.slug} is now served at /token.json, /token.js and /token.")
    return HttpResponseRedirect(reverse("accounts:account", args=[account.slug]))


@owner_required
@require_POST
@never_cache
def account_reveal_token(request: HttpRequest, slug: str) -> HttpResponse:
    """The one place a person sees a whole token: on an explicit POST by an owner."""
    account = get_object_or_404(InstagramAccount, slug=slug)
    token = getattr(account, "access_token", None)
    value, problem = None, ""
    if account.feed_only:
        problem = (
            "This account is feed only: its token never leaves the agent. "
            "Turn feed only off on the account page to see or serve it."
        )
    elif token is None:
        problem = "This account has no token stored."
    else:
        try:
            value = token.value
        except crypto.InvalidToken:
            problem = (
                "The stored token cannot be decrypted with the configured "
                "TOKEN_ENCRYPTION_KEY; restore the old key or reconnect the account."
            )
    if value:
        logger.info("token of %s revealed to user %s", account.slug, request.user.pk)
    # never_cache marks the page no-store, private: no cache keeps the token.
    return render(
        request,
        "accounts/token_reveal.html",
        {"account": account, "token": token, "value": value, "problem": problem},
        status=200 if value else 400,
    )


@owner_required
@require_POST
def account_feed_only(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_object_or_404(InstagramAccount, slug=slug)
    form = FeedOnlyForm(request.POST)
    form.is_valid()  # one checkbox: always valid, absent = off
    feed_svc.account_feed_only_set(account=account, feed_only=form.cleaned_data["feed_only"])
    if account.feed_only:
        messages.success(
            request,
            f"{account.slug} is feed only: /token/{account.slug}… answers 404 and the token "
            "never leaves the agent. The feed is served as before.",
        )
    else:
        messages.success(request, f"The token of {account.slug} is served again.")
    return HttpResponseRedirect(reverse("accounts:account", args=[account.slug]))


# --- Invites -------------------------------------------------------------------------------------


@owner_required
@require_http_methods(["GET", "POST"])
@never_cache
def invites(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        invite = invite_svc.invite_create(
            created_by=request.user, note=form.cleaned_data["note"], days=form.cleaned_data["days"]
        )
        messages.success(
            request,
            "Invite created. Send the link below to your client; it connects one account "
            f"and stops working on {invite.expires_at:%Y-%m-%d %H:%M} UTC.",
        )
        return HttpResponseRedirect(reverse("accounts:invites"))
    return render(
        request,
        "accounts/invites.html",
        {"form": form, "rows": dashboard.invites_list(), "origin": _origin(request)},
        status=400 if request.method == "POST" else 200,
    )


@owner_required
@require_POST
def invite_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    invite = get_object_or_404(Invite, pk=pk, used_at__isnull=True)
    invite_svc.invite_revoke(invite=invite)
    messages.success(request, "Invite withdrawn: its link no longer works.")
    return HttpResponseRedirect(reverse("accounts:invites"))


@require_http_methods(["GET", "POST"])
@never_cache
def invite_landing(request: HttpRequest, token: str) -> HttpResponse:
    """The client's page: what connecting means, and a button to Instagram. It never
    gives access to the agent."""
    try:
        invite = invite_svc.invite_resolve(token=token)
    except invite_svc.InviteError as exc:
        return sign_in_failure(request, exc)
    if request.method == "POST":
        return authorization_start(request, purpose=OAuthState.Purpose.INVITE, invite=invite)
    return render(request, "accounts/invite_landing.html", {"invite": invite, "token": token})


@never_cache
def invite_thanks(request: HttpRequest) -> HttpResponse:
    username = request.session.pop(INVITE_THANKS_SESSION_KEY, "")
    return render(request, "accounts/invite_thanks.html", {"username": username})


# --- Paste a token -------------------------------------------------------------------------------


@owner_required
@require_http_methods(["GET", "POST"])
@never_cache
def token_import(request: HttpRequest) -> HttpResponse:
    form = TokenImportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = import_svc.account_import_token(
                access_token=form.cleaned_data["token"],
                slug=form.cleaned_data["slug"] or None,
                connected_by=request.user,
            )
        except import_svc.TokenInvalid as exc:
            form.add_error("token", str(exc))
        except account_svc.SlugError as exc:
            form.add_error("slug", str(exc))
        else:
            account = result.account
            if form.cleaned_data["make_default"]:
                account_svc.account_set_default(account=account)
            messages.success(
                request,
                f"{'Imported' if result.created else 'Updated'} @{account.username} as "
                f"{account.slug}: {result.note}.",
            )
            return HttpResponseRedirect(reverse("accounts:account", args=[account.slug]))
    return render(
        request,
        "accounts/token_import.html",
        {"form": form},
        status=400 if request.method == "POST" else 200,
    )


# --- Setup ---------------------------------------------------------------------------------------


@never_cache
def setup(request: HttpRequest) -> HttpResponse:
    """The live checklist. Public (a fresh deploy lands here) unless
    ``HIDE_HELP_PAGES``, then owners only."""
    owner = is_owner(request.user)
    if settings.HIDE_HELP_PAGES and not owner:
        raise Http404("Nothing here.")
    checklist = dashboard.setup_checklist()
    return render(
        request,
        "accounts/setup.html",
        {
            "checklist": checklist,
            # ALLOWED_DOMAINS has its own red warning with instructions ({% cors_warning %}).
            "warnings": [
                w
                for w in dashboard.setup_warnings(checklist=checklist)
                if w.key != "allowed_domains"
            ],
            "urls": dashboard.setup_meta_urls(origin=_origin(request)),
            "is_owner": owner,
            "owner_usernames": settings.OWNER_INSTAGRAM_USERNAMES if owner else [],
        },
    )
