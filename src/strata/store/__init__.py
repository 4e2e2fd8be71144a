"""The metadata store: one SQLAlchemy 2 (async) implementation over SQLite or PostgreSQL.

Feature packages (access, workflows, ...) declare their tables on :data:`Base` and ship an
Alembic migration each; :meth:`Database.migrate` brings any database to every head.
"""

from strata.store.database import Database
from strata.store.schema import Base
from strata.store.urls import async_database_url

__all__ = ["Base", "Database", "async_database_url"]
