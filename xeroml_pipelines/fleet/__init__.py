"""The fleet: every registered export run by shared queries (see README, "Many projects")."""
