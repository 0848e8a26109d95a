"""One process at a time sets up a shared database: ``schema_lock(uri)``.

MLflow and Optuna create their tables when a client first opens an empty database. Two processes
doing so at once fail: on sqlite with ``table experiments already exists`` or a half-migrated db,
on PostgreSQL with a unique violation on ``pg_type_typname_nsp_index`` (both create the same
table; seen with two sweepers starting together). ``schema_lock`` serializes that step:

- ``sqlite:///path``: a file lock beside the db (``<path>.lock``), for processes of one machine;
- ``postgresql://...``: a PostgreSQL advisory lock (``pg_advisory_lock``) held on a connection of
  its own, which serializes processes on every machine that reaches the server;
- anything else (an ``http://`` tracking server creates its own store): no lock.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

ADVISORY_KEY = 0x636F6D7066  # "compf": the advisory lock compframe takes while a schema is set up


def sqlite_file(uri: str) -> Path | None:
    """The db file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def schema_lock(uri: str, timeout_s: float = 60):
    """Hold the database's setup lock inside the block (waiting at most ``timeout_s`` seconds)."""
    db = sqlite_file(uri)
    if db is not None:
        from filelock import FileLock

        db.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{db}.lock", timeout=timeout_s):
            yield
    elif uri.startswith("postgresql"):
        with _advisory_lock(uri, timeout_s):
            yield
    else:
        yield


@contextlib.contextmanager
def _advisory_lock(uri: str, timeout_s: float):
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"SET statement_timeout = {int(timeout_s * 1000)}"))
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                conn.commit()
    finally:
        engine.dispose()
