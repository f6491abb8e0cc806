"""Forms for the owner's pages. They check the shape of the input; the services
decide the rest (slug uniqueness, token validity)."""

from django import forms

from accounts.services.accounts import SLUG_MAX_LENGTH
from accounts.services.invites import INVITE_DEFAULT_DAYS, INVITE_MAX_DAYS

_SLUG_HELP = "Letters, digits, hyphens and underscores; the token is served at /token/NAME.json."


class RenameForm(forms.Form):
    slug = forms.SlugField(label="New name", max_length=SLUG_MAX_LENGTH, help_text=_SLUG_HELP)


class FeedOnlyForm(forms.Form):
    # A checkbox: unticked sends nothing, which is False.
    feed_only = forms.BooleanField(
        label="Feed only: serve this account's feed, never its token",
        required=False,
        help_text="Its token URLs then answer 404, as for an unknown account.",
    )


class InviteForm(forms.Form):
    note = forms.CharField(
        label="Note (for you: whose account is it?)", max_length=200, required=False
    )
    days = forms.IntegerField(
        label="Valid for (days)",
        min_value=1,
        max_value=INVITE_MAX_DAYS,
        initial=INVITE_DEFAULT_DAYS,
    )


class TokenImportForm(forms.Form):
    # A password input: the token is never echoed back into the page, even on errors.
    token = forms.CharField(
        label="Long-lived Instagram token",
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        max_length=2000,
        strip=True,
    )
    slug = forms.SlugField(
        label="Name (optional)",
        max_length=SLUG_MAX_LENGTH,
        required=False,
        help_text="Defaults to the Instagram username. " + _SLUG_HELP,
    )
    make_default = forms.BooleanField(
        label="Serve it at /token.json, /token.js and /token (the default account)",
        required=False,
    )
