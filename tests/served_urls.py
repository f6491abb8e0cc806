"""The agent's public URLs, each form once, for the suites that go through all of
them (the token URLs' tests, the hostile-input and rate-limit suites)."""

# Every token URL, for an account "acme" that is also the default.
TOKEN_URLS = [
    "/token/acme.json",
    "/token/acme.js",
    "/token/acme",
    "/token/acme.txt",
    "/token.json",
    "/token.js",
    "/token",
]

# Every feed URL, for an account "acme" that is also the default (the suites add a
# mirrored picture's URL, which depends on the stored bytes).
FEED_URLS = [
    "/feed/acme.json",
    "/feed/acme/media",
    "/feed/acme.js",
    "/feed.json",
    "/feed/media",
    "/feed.js",
    "/feed/embed.js",
    "/feed/embed.css",
]
