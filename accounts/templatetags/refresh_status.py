"""Template helpers for the refresh partials: ``{% load refresh_status %}``.

``{% account_refresh_info account as info %}`` what the account page shows about
refreshing (expiry, last/next refresh, health, heartbeat; never the token), and
``{% account_refresh_history account as attempts %}`` its recent attempts."""

from django import template

from accounts.models import InstagramAccount, RefreshAttempt
from accounts.selectors import refresh as refresh_selectors

register = template.Library()


@register.simple_tag
def account_refresh_info(account: InstagramAccount) -> refresh_selectors.AccountRefreshInfo:
    return refresh_selectors.account_refresh_info(account=account)


@register.simple_tag
def account_refresh_history(account: InstagramAccount, limit: int = 20) -> list[RefreshAttempt]:
    return refresh_selectors.refresh_history(account=account, limit=limit)
