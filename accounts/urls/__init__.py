"""URL map, split like views/: public token URLs, OAuth, owner pages, hooks."""

from accounts.urls import hooks, oauth, owner, public

app_name = "accounts"

urlpatterns = public.urlpatterns + oauth.urlpatterns + owner.urlpatterns + hooks.urlpatterns
