"""The agent's one app: Instagram accounts, their tokens and feeds, and the pages,
URLs and tasks that connect, refresh and serve them."""
