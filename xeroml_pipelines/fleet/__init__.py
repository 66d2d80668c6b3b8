"""The fleet: every registered export run by shared queries (docs/many-projects.md)."""
