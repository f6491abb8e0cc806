"""Everything that reads, one module per area: dashboard, refresh, serving."""
