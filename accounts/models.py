"""What the agent stores: accounts, their (encrypted) tokens, refresh history,
the refresher's heartbeat, OAuth state, invites, alert bookkeeping, Meta's
data-deletion requests and the owners' pinned Instagram ids. Behaviour lives in
services/selectors, not here."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts import crypto


class RefreshFrequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


REFRESH_INTERVALS = {
    RefreshFrequency.DAILY: timedelta(days=1),
    RefreshFrequency.WEEKLY: timedelta(days=7),
    RefreshFrequency.MONTHLY: timedelta(days=30),
}


class InstagramAccount(models.Model):
    """One professional Instagram account whose token the agent keeps alive."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnect"
        DISCONNECTED = "disconnected", "Disconnected"

    slug = models.SlugField(max_length=64, unique=True, help_text="Used in /token/<slug>.json")
    # /me `user_id`: the professional account id (IG_ID), the stable key (docs/instagram.md §5).
    ig_user_id = models.CharField("Instagram user_id", max_length=64, unique=True)
    # /me `id`: app-scoped id, kept because Meta's callbacks may send either.
    app_scoped_id = models.CharField(max_length=64, blank=True, db_index=True)
    username = models.CharField(max_length=150)
    name = models.CharField(max_length=255, blank=True)
    account_type = models.CharField(max_length=32, blank=True)
    profile_picture_url = models.URLField(max_length=2000, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    # Blank = settings.REFRESH_FREQUENCY.
    refresh_frequency = models.CharField(
        max_length=10, choices=RefreshFrequency.choices, blank=True
    )
    # Optional per-account narrowing of ALLOWED_DOMAINS (same syntax).
    allowed_domains = models.TextField(blank=True)
    is_default = models.BooleanField(
        default=False, help_text="Served at /token.json, /token.js and /token."
    )
    # Feed only: the feed is served, the token URLs answer 404 as for an unknown
    # account, and the token never leaves the agent.
    feed_only = models.BooleanField(
        "feed only",
        default=False,
        help_text="Serve only the feed: the token URLs answer 404 and the token never "
        "leaves the agent.",
    )
    # The Django user who signs in with this Instagram account (owners only).
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="instagram_account",
    )
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Set by every connection (sign-in, connect, invite, import); a Meta deauthorize
    # issued before it is a replay and is ignored. Null on rows older than the field.
    connected_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Last Instagram error, redacted.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    # A refresh claims the account by moving this forward in one conditional
    # UPDATE; no transaction is held across the HTTP call.
    refresh_locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} (@{self.username})"

    @property
    def effective_refresh_frequency(self) -> str:
        return self.refresh_frequency or settings.REFRESH_FREQUENCY

    @property
    def refresh_interval(self) -> timedelta:
        return REFRESH_INTERVALS[RefreshFrequency(self.effective_refresh_frequency)]


class AccessToken(models.Model):
    """The account's current long-lived token, encrypted at rest.

    Replaced in place inside one transaction (value, expiry and version together),
    so the old token stays until the new one is committed."""

    account = models.OneToOneField(
        InstagramAccount, on_delete=models.CASCADE, related_name="access_token"
    )
    ciphertext = models.TextField()
    # When Instagram issued this token string (the 24 h refresh floor counts from here).
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    refreshed_at = models.DateTimeField(null=True, blank=True)
    permissions = models.JSONField(default=list, blank=True)
    # Incremented on each write; a writer holding an older version must not win.
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"token for {self.account_id} (expires {self.expires_at:%Y-%m-%d})"

    def __repr__(self) -> str:
        return f"<AccessToken account={self.account_id} v{self.version} {self.masked}>"

    @property
    def value(self) -> str:
        return crypto.decrypt(self.ciphertext)

    @value.setter
    def value(self, plaintext: str) -> None:
        self.ciphertext = crypto.encrypt(plaintext)

    @property
    def masked(self) -> str:
        """What a person may see: the first four and last four characters."""
        try:
            v = self.value
        except crypto.InvalidToken:
            return "(undecryptable)"
        return f"{v[:4]}…{v[-4:]}" if len(v) > 12 else "…"


class RefreshAttempt(models.Model):
    """One try at refreshing one account's token (history; pruned)."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Refreshed"
        SKIPPED = "skipped", "Skipped"
        TRANSIENT = "transient", "Transient failure"
        RATE_LIMITED = "rate_limited", "Rate limited"
        INVALID_TOKEN = "invalid_token", "Invalid token"
        PERMISSION = "permission", "Permission lost"
        MALFORMED = "malformed", "Malformed response"
        CONFIGURATION = "configuration", "Configuration error"
        ERROR = "error", "Other error"

    class Trigger(models.TextChoices):
        BEAT = "beat", "Schedule"
        COMMAND = "command", "Command line"
        HOOK = "hook", "Webhook"
        MANUAL = "manual", "Refresh now"

    account = models.ForeignKey(
        InstagramAccount, on_delete=models.CASCADE, related_name="refresh_attempts"
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.BEAT)
    attempt = models.PositiveSmallIntegerField(default=1)
    error_class = models.CharField(max_length=64, blank=True)
    ig_code = models.IntegerField(null=True, blank=True)
    ig_subcode = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True, help_text="Redacted.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.account_id} {self.outcome} at {self.started_at:%Y-%m-%d %H:%M}"


class RefresherHeartbeat(models.Model):
    """One row per run of the periodic job: proves beat and a worker are alive."""

    ran_at = models.DateTimeField(default=timezone.now, db_index=True)
    accounts_due = models.PositiveIntegerField(default=0)
    accounts_queued = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self) -> str:
        return f"heartbeat {self.ran_at:%Y-%m-%d %H:%M:%S}"


def _random_key() -> str:
    return secrets.token_urlsafe(32)


class OAuthState(models.Model):
    """Server-side OAuth ``state``: random, bound to a session, single-use, short-lived."""

    class Purpose(models.TextChoices):
        SIGN_IN = "sign_in", "Sign in"
        CONNECT = "connect", "Connect another account"
        INVITE = "invite", "Client invite"

    state = models.CharField(max_length=64, unique=True, default=_random_key)
    session_key = models.CharField(max_length=64, db_index=True)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    invite = models.ForeignKey("Invite", null=True, blank=True, on_delete=models.CASCADE)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"OAuth state for {self.purpose} ({self.created_at:%Y-%m-%d %H:%M})"


class Invite(models.Model):
    """A link an owner gives a client so they can connect their account, nothing more."""

    key = models.CharField(max_length=64, unique=True, default=_random_key)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    account = models.ForeignKey(
        InstagramAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"invite {self.note or self.pk}"


class AlertState(models.Model):
    """Remembers what was last alerted for a condition, so each alerts once
    (again only when it changes, or after a day)."""

    key = models.CharField(max_length=200, unique=True)  # e.g. "expiring:<account id>"
    fingerprint = models.CharField(max_length=200, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.key


class DataDeletionRequest(models.Model):
    """Meta's data-deletion callback; its status page is public by confirmation code."""

    confirmation_code = models.CharField(max_length=64, unique=True, default=_random_key)
    ig_user_id = models.CharField(max_length=64)
    received_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    accounts_deleted = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"data deletion {self.confirmation_code}"


class OwnerIdentity(models.Model):
    """A listed owner username pinned to the Instagram account that first signed in
    with it. That account stays the owner under any later username; the name
    alone admits no other account. Deleting the row lets the name pin again."""

    username = models.CharField(max_length=30, unique=True)
    ig_user_id = models.CharField("Instagram user_id", max_length=64, db_index=True)
    pinned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "owner identities"

    def __str__(self) -> str:
        return f"@{self.username} = Instagram user {self.ig_user_id}"


# --- The feed: per-account snapshots of /me/media and the mirrored images ---------------------


class FeedSnapshot(models.Model):
    """The last good copy of an account's feed, served while Instagram fails.

    ``posts`` holds the posts in the served shape with images as references
    (``sha256``/width/height of each rendition); URLs are built when served. A sync
    claims the row by moving ``sync_locked_until`` forward in one conditional
    UPDATE; no transaction is held across the calls to Instagram."""

    account = models.OneToOneField(
        InstagramAccount, on_delete=models.CASCADE, related_name="feed_snapshot"
    )
    posts = models.JSONField(default=list, blank=True)
    # Last successful read of Instagram (served as ``updated_at``).
    synced_at = models.DateTimeField(null=True, blank=True)
    # When ``posts`` last changed (a sync that found the same feed leaves it).
    changed_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="Last sync failure, redacted.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    error_class = models.CharField(max_length=64, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Instagram asked us to wait (rate limit): no sync before this.
    retry_not_before = models.DateTimeField(null=True, blank=True)
    # Pictures the last successful sync could not mirror (their posts are left out).
    images_missing = models.PositiveIntegerField(default=0)
    last_image_error = models.TextField(blank=True)
    sync_locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"feed of {self.account_id} ({len(self.posts)} posts)"


class FeedImage(models.Model):
    """One rendition of a mirrored picture, content-addressed by the SHA-256 of its
    bytes. The bytes live in ``data`` (the default, "database") or in the Django
    storage named by ``storage`` under ``storage_name``."""

    sha256 = models.CharField(max_length=64, unique=True)
    # SHA-256 of the picture as downloaded from Instagram's CDN.
    source_sha256 = models.CharField(max_length=64, db_index=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    content_type = models.CharField(max_length=32)
    data = models.BinaryField(null=True, editable=False)
    storage = models.CharField(max_length=64, blank=True, help_text="Blank: the database.")
    storage_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} {self.width}x{self.height}"


class FeedImageUse(models.Model):
    """Which snapshot needs which image: in its current posts, its previous posts
    (kept one more sync), or pending (mirrored by a sync that has not swapped yet).
    An image without any use is deleted; PROTECT makes deleting a used one fail."""

    class Role(models.TextChoices):
        CURRENT = "current", "Current"
        PREVIOUS = "previous", "Previous"
        PENDING = "pending", "Pending"

    snapshot = models.ForeignKey(FeedSnapshot, on_delete=models.CASCADE, related_name="image_uses")
    image = models.ForeignKey(FeedImage, on_delete=models.PROTECT, related_name="uses")
    role = models.CharField(max_length=10, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "image", "role"], name="feed_image_use_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.role} use of {self.image_id} by {self.snapshot_id}"
