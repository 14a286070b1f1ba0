"""API schemas (``XCreate`` / ``XUpdate`` / ``XPublic``), kept apart from the ORM tables."""
