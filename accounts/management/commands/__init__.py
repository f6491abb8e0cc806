"""``manage.py`` commands: token imports, refreshes, feed syncs, key rotation and the
standalone sandbox server."""
