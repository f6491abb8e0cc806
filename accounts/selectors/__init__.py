"""Everything that reads, one module per area: dashboard (the owner's pages), refresh
(due accounts, history), serving and served_feed (what the public token and feed URLs
serve), feed (feed bodies, images), feed_status (feed freshness), health (/healthz)."""
