"""The Django admin: accounts (with their token masked, never shown), refresh
attempts, heartbeats, invites and owner identities."""

from django import forms
from django.contrib import admin

from accounts import cors
from accounts.models import (
    AccessToken,
    InstagramAccount,
    Invite,
    OwnerIdentity,
    RefreshAttempt,
    RefresherHeartbeat,
)
from accounts.services.accounts import SlugError, slug_validate
from accounts.usernames import username_normalise


class AccessTokenInline(admin.StackedInline):
    model = AccessToken
    can_delete = False
    # The ciphertext is never shown; the masked value is all a person sees here.
    fields = ("masked", "issued_at", "expires_at", "refreshed_at", "version")
    readonly_fields = fields


class InstagramAccountForm(forms.ModelForm):
    class Meta:
        model = InstagramAccount
        fields = (
            "slug",
            "username",
            "name",
            "account_type",
            "profile_picture_url",
            "status",
            "refresh_frequency",
            "allowed_domains",
            "is_default",
            "feed_only",
            "user",
            "connected_by",
        )

    def clean_slug(self) -> str:
        # The rules of the owner's rename (reserved names, case-insensitive uniqueness).
        try:
            return slug_validate(slug=self.cleaned_data.get("slug", ""), account=self.instance)
        except SlugError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_allowed_domains(self) -> str:
        value = self.cleaned_data.get("allowed_domains", "")
        problems = cors.validate(value)
        if problems:
            raise forms.ValidationError(problems)
        return value


@admin.register(InstagramAccount)
class InstagramAccountAdmin(admin.ModelAdmin):
    form = InstagramAccountForm
    list_display = ("slug", "username", "status", "is_default", "feed_only", "updated_at")
    list_filter = ("status", "feed_only")
    search_fields = ("slug", "username", "ig_user_id")
    readonly_fields = ("ig_user_id", "app_scoped_id", "connected_at", "last_error", "last_error_at")
    inlines = [AccessTokenInline]


@admin.register(RefreshAttempt)
class RefreshAttemptAdmin(admin.ModelAdmin):
    list_display = ("account", "started_at", "outcome", "trigger", "ig_code", "message")
    list_filter = ("outcome", "trigger")
    readonly_fields = [f.name for f in RefreshAttempt._meta.fields]
    # History is written by the refresh engine only (messages are redacted there).
    list_select_related = ("account",)
    search_fields = ("account__slug", "account__username", "message")
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


admin.site.register(RefresherHeartbeat, list_display=("ran_at", "accounts_due", "accounts_queued"))
admin.site.register(Invite, list_display=("note", "created_at", "expires_at", "used_at"))


class OwnerIdentityForm(forms.ModelForm):
    class Meta:
        model = OwnerIdentity
        fields = ("username", "ig_user_id", "pinned_at")

    def clean_username(self) -> str:
        try:
            return username_normalise(self.cleaned_data.get("username", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(OwnerIdentity)
class OwnerIdentityAdmin(admin.ModelAdmin):
    """Pins are made by sign-in; delete one to let its username pin another account
    (an owner whose Instagram account itself was replaced)."""

    form = OwnerIdentityForm
    list_display = ("username", "ig_user_id", "pinned_at")
    search_fields = ("username", "ig_user_id")
