"""The accounts app: connects the token cache's invalidation receivers and the
serving settings' system checks once the models are loaded."""

from django.apps import AppConfig
from django.core import checks


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Instagram accounts"

    def ready(self) -> None:
        from accounts import serving_policy, token_cache

        # Drop served token copies after every committed account or token write.
        token_cache.connect_receivers()
        # ALLOWED_DOMAINS entries that match nothing, an unusable JS_CONSTANT_NAME
        # (tokenagent.W101 / tokenagent.E101).
        checks.register(serving_policy.check_serving_settings, checks.Tags.security)
