"""API keys in the metadata database: create, list, revoke, find; all key SQL lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from strata.access.secrets import display_prefix, hash_key, new_key
from strata.access.tables import ApiKey, KeysVersion
from strata.errors import InvalidRequest
from strata.principal import SCOPES
from strata.store import Database

BOOTSTRAP_TENANT = "admin"


@dataclass(frozen=True)
class KeyInfo:
    """A key as listings show it: never the secret, never its hash."""

    key_id: str
    prefix: str
    tenant: str
    scopes: list[str]
    models: list[str] | None
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            row.key_id,
            row.prefix,
            row.tenant,
            list(row.scopes),
            None if row.models is None else list(row.models),
            row.name,
            _aware(row.created_at) or row.created_at,
            _aware(row.expires_at),
            _aware(row.revoked_at),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.key_id,
            "object": "api_key",
            "prefix": self.prefix,
            "tenant": self.tenant,
            "scopes": self.scopes,
            "models": self.models,
            "name": self.name,
            "created_at": int(self.created_at.timestamp()),
            "expires_at": None if self.expires_at is None else int(self.expires_at.timestamp()),
            "revoked_at": None if self.revoked_at is None else int(self.revoked_at.timestamp()),
        }


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything Strata stores is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def validate_key_fields(tenant: str, scopes: Sequence[str], models: list[str] | None) -> None:
    if not tenant or len(tenant) > 128:
        raise InvalidRequest("tenant: must be 1 to 128 characters", param="tenant")
    unknown = sorted(set(scopes) - SCOPES)
    if not scopes or unknown:
        raise InvalidRequest(
            f"scopes: unknown scope(s) {unknown} (known: {', '.join(sorted(SCOPES))})"
            if unknown
            else "scopes: name at least one scope",
            param="scopes",
        )
    if models is not None and not models:
        raise InvalidRequest("models: leave it out for every model, or name at least one", param="models")


class KeyStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def create(
        self,
        tenant: str,
        scopes: Sequence[str],
        *,
        models: list[str] | None = None,
        name: str | None = None,
        expires_at: datetime | None = None,
        key: str | None = None,
    ) -> tuple[KeyInfo, str]:
        """A new key; the returned secret is never stored and cannot be shown again."""
        validate_key_fields(tenant, scopes, models)
        key_id, generated = new_key()
        secret = key or generated
        row = ApiKey(
            key_id=key_id,
            key_hash=hash_key(secret),
            prefix=display_prefix(secret),
            tenant=tenant,
            scopes=sorted(set(scopes)),
            models=None if models is None else sorted(set(models)),
            name=name,
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            revoked_at=None,
        )
        async with self.database.session() as session:
            session.add(row)
            await _bump_version(session)
        return KeyInfo.of(row), secret

    async def list(self, tenant: str | None = None) -> list[KeyInfo]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
        if tenant is not None:
            query = query.where(ApiKey.tenant == tenant)
        async with self.database.session() as session:
            return [KeyInfo.of(row) for row in (await session.scalars(query)).all()]

    async def get(self, key_id: str) -> KeyInfo | None:
        async with self.database.session() as session:
            row = await session.get(ApiKey, key_id)
            return None if row is None else KeyInfo.of(row)

    async def revoke(self, key_id: str) -> KeyInfo | None:
        """Revoke ``key_id`` (idempotent); None if there is no such key."""
        async with self.database.session() as session:
            row = await session.get(ApiKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                await _bump_version(session)
            return KeyInfo.of(row)

    async def find(self, key_hash: str) -> KeyInfo | None:
        async with self.database.session() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            return None if row is None else KeyInfo.of(row)

    async def active_hashes(self) -> frozenset[str]:
        """The SHA-256 of every unrevoked key (read on the database's own thread): what a gateway keeps
        in memory to refuse unknown keys without a lookup."""
        return await self.database.off_loop(_read_active_hashes)

    async def version(self) -> int:
        """The key-change counter, read on the database's own thread (gateways poll it often)."""
        return await self.database.off_loop(_read_version)

    async def has_admin(self) -> bool:
        """Whether any unrevoked key has the admin scope."""
        async with self.database.session() as session:
            rows = (await session.scalars(select(ApiKey.scopes).where(ApiKey.revoked_at.is_(None)))).all()
            return any("admin" in scopes for scopes in rows)

    async def bootstrap(self, admin_key: str | None) -> str | None:
        """Make sure an admin key exists. Uses ``admin_key`` (STRATA_ADMIN_KEY) when given, else generates
        one; returns the new key to print once, or None when an admin key already existed.

        One transaction that first locks the key-version row, so gateways starting together on a fresh
        database create one admin key between them, not one each."""
        key_id, generated = new_key()
        secret = admin_key or generated
        async with self.database.session() as session:
            await _bump_version(session)  # the row lock that serialises concurrent bootstraps
            rows = (await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).all()
            if any("admin" in row.scopes for row in rows):
                return None
            if await session.scalar(select(ApiKey.key_id).where(ApiKey.key_hash == hash_key(secret))) is not None:
                return None  # that exact key exists but was revoked or demoted: never resurrect it
            session.add(
                ApiKey(
                    key_id=key_id,
                    key_hash=hash_key(secret),
                    prefix=display_prefix(secret),
                    tenant=BOOTSTRAP_TENANT,
                    scopes=["admin"],
                    models=None,
                    name="bootstrap",
                    created_at=datetime.now(UTC),
                    expires_at=None,
                    revoked_at=None,
                )
            )
        return secret


async def _bump_version(session: AsyncSession) -> None:
    await session.execute(update(KeysVersion).where(KeysVersion.id == 1).values(version=KeysVersion.version + 1))


async def _read_version(database: Database) -> int:
    # Polled every revocation_poll_ms by every gateway: the cheapest statement the backend has.
    row = await database.fetch_one(f"SELECT version FROM {KeysVersion.__tablename__} WHERE id = 1")
    return int(row[0]) if row is not None and row[0] is not None else 0


async def _read_active_hashes(database: Database) -> frozenset[str]:
    async with database.session() as session:
        return frozenset((await session.scalars(select(ApiKey.key_hash).where(ApiKey.revoked_at.is_(None)))).all())
