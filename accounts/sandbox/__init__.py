"""A stand-in Instagram (authorize window, token and Graph endpoints, media CDN) with
scripted failures, for development and the tests (see README.md beside this file)."""
