"""Everything that changes state, one module per job: tokens (the one write path
for a token, key rotation), accounts (the upsert, slugs, owner actions), signin
(Instagram Login's writes), oauth_callback (the callback's checks and dispatch),
invites, imports, meta (Meta's callbacks), refresh (the refresh engine); errors
holds the refusals they share."""
