"""Everything that changes state, one module per concern:
tokens (the one write path for a token), connect (OAuth/import/invites),
refresh (the refresh engine)."""
