"""The views, one module per audience: public (token URLs), feed, health, meta (Meta's
callbacks), oauth (Instagram Login), owner, preview and refresh."""
