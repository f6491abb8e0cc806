"""The production settings with one addition: the bare comparison view's URL."""

from tokenagent.settings import *  # noqa: F403

ROOT_URLCONF = "bench.token_endpoints.urls"
