"""The sandbox Instagram's URLs, mounted under /sandbox/ (see tokenagent/urls.py)."""

from django.urls import path, re_path

from accounts.sandbox import control, media, views

app_name = "sandbox"

urlpatterns = [
    # www.instagram.com
    path("oauth/authorize", views.authorize, name="authorize"),
    # api.instagram.com
    path("oauth/access_token", views.code_exchange, name="code-exchange"),
    # graph.instagram.com (token endpoints are unversioned)
    path("access_token", views.long_lived, name="long-lived"),
    path("refresh_access_token", views.refresh, name="refresh"),
    re_path(r"^(?:(?P<version>v\d+\.\d+)/)?me$", views.me, name="me"),
    re_path(r"^(?:(?P<version>v\d+\.\d+)/)?me/media$", media.media, name="media"),
    # paging.next points at the IG user id's edge, versioned.
    re_path(r"^(?P<version>v\d+\.\d+)/(?P<ig_id>\d+)/media$", media.media, name="user-media"),
    # The media CDN (scontent.cdninstagram.com): signed, expiring URLs.
    re_path(r"^cdn/(?P<username>[\w.]+)/(?P<name>[\w.]+)$", media.cdn_asset, name="cdn"),
    # Usernames may contain dots, and image names carry the username.
    re_path(r"^media/(?P<name>[-\w.]+)\.svg$", views.media_image, name="media-image"),
    # control API
    path("_control/calls", control.control_calls, name="control-calls"),
    path("_control/requests", control.control_requests, name="control-requests"),
    path("_control/<slug:action>", control.control, name="control"),
]
