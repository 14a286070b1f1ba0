"""Storage: SQLAlchemy 2 tables, engine, start-up wait and migrations."""
