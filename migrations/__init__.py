"""Alembic migrations for the store; run with `relay db upgrade`."""
