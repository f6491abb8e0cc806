"""URL map, split like views/: public token URLs, OAuth, owner pages, hooks."""

from accounts.urls import health, hooks, oauth, owner, public, refresh

app_name = "accounts"

urlpatterns = (
    public.urlpatterns
    + oauth.urlpatterns
    + owner.urlpatterns
    + hooks.urlpatterns
    + health.urlpatterns
    + refresh.urlpatterns
)
