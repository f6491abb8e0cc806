from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Instagram accounts"

    def ready(self) -> None:
        # Signal receivers that drop served token copies on save/delete, and the
        # system checks for ALLOWED_DOMAINS / JS_CONSTANT_NAME (tokenagent.W101/E101).
        from accounts import token_cache  # noqa: F401
        from accounts.selectors import serving  # noqa: F401
