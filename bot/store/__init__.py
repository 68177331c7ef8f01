"""The state store's queries: runs, their steps and audit (``runs``), installations and
repositories (``repositories``). Tables and migrations are in :mod:`bot.db`."""
