"""Template tags: ``token_serving`` (the snippets' values) and ``refresh_status``."""
