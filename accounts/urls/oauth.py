"""Instagram Login: sign-in, the one redirect URI registered with Meta, sign-out."""

from django.urls import path

from accounts.views import oauth

urlpatterns = [
    path("login/", oauth.login, name="login"),
    path("oauth/instagram/callback/", oauth.oauth_callback, name="oauth-callback"),
    path("logout/", oauth.logout, name="logout"),
]
