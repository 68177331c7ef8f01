"""Alembic migration history of the state store (run with ``factory db upgrade``)."""
