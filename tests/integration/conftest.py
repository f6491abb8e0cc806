"""Fixtures of the browser tests (tests/integration/browser_site.py): the user's
website on another origin, the agent restricted to it, and the Graph API and
jsDelivr answered in the closed network; the live agent with its feeds."""

from tests.integration.browser_site import agent, cdn, graph, site, token  # noqa: F401
from tests.integration.feed_browser import live_agent, other_site, own_cache, watch  # noqa: F401
