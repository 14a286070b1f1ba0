"""The embedded single-machine mode behind ``make run``: API, dashboard, ingest and a worker.

This is the only package that imports both ``service`` and ``worker``; it wires them in one
process (SQLite and an in-process bus by default, Postgres and Redis when their URLs are set).
"""
