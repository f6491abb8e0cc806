"""The home page / dashboard, the owner's pages and the client's invite pages."""

from django.urls import path

from accounts.views import owner

urlpatterns = [
    path("", owner.home, name="home"),
    path("connect/", owner.connect_start, name="connect"),
    path("accounts/<slug:slug>/", owner.account_detail, name="account"),
    path("accounts/<slug:slug>/disconnect/", owner.account_disconnect, name="account-disconnect"),
    path("accounts/<slug:slug>/rename/", owner.account_rename, name="account-rename"),
    path("accounts/<slug:slug>/default/", owner.account_make_default, name="account-default"),
    path("accounts/<slug:slug>/reveal/", owner.account_reveal_token, name="account-reveal"),
    path("invites/", owner.invites, name="invites"),
    path("invites/<int:pk>/revoke/", owner.invite_revoke, name="invite-revoke"),
    path("invite/thanks/", owner.invite_thanks, name="invite-thanks"),
    path("invite/<str:token>/", owner.invite_landing, name="invite"),
    path("import/", owner.token_import, name="token-import"),
    path("setup/", owner.setup, name="setup"),
]
