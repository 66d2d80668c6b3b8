"""The registry of per-project exports ("destinations as data"): entries shaped like the
configuration's `exports:` items, stored in SQLite (embedded) or PostgreSQL (a deployment) through
SQLAlchemy, customer credentials encrypted at rest, managed by `xeroml destinations ...`."""
