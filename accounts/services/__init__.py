"""Everything that changes state, one module per job: tokens (the one write path
for a token, key rotation), accounts (the upsert, slugs, owner actions), signin
(Instagram Login's writes), oauth_callback (the callback's checks and dispatch),
invites, imports, meta (Meta's callbacks), refresh (the refresh engine),
refresh_claim (one refresh per account), refresher (the periodic job's upkeep),
feed (feed sync and deletion), feed_schedule (when feeds are read); errors holds
the refusals they share."""
