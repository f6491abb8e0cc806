"""URL map, split like views/: public token URLs, OAuth, owner pages, hooks, Meta."""

from accounts.urls import health, hooks, meta, oauth, owner, public, refresh

app_name = "accounts"

urlpatterns = (
    public.urlpatterns
    + oauth.urlpatterns
    + owner.urlpatterns
    + hooks.urlpatterns
    + meta.urlpatterns
    + health.urlpatterns
    + refresh.urlpatterns
)
