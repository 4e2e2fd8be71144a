"""Prompt templates in the metadata database (SQLite and PostgreSQL): numbered immutable versions,
the current pointer and rollback, tenants apart; and the library that keeps the chat path off the
database."""

from __future__ import annotations

import asyncio

import pytest

from strata.errors import Conflict, NotFound
from strata.store import Database
from strata.workflows.prompt_catalog import NewVersion, PromptCatalog
from strata.workflows.prompt_library import PromptLibrary
from strata.workflows.store import JobStore


def _version(text: str, tenant: str = "acme", prompt_id: str = "greet") -> NewVersion:
    messages = [{"role": "system", "content": text + " {{ name }}"}]
    return NewVersion(tenant, prompt_id, messages, {"name": {"type": "string"}}, None, "key-1")


@pytest.fixture
def catalog(database: Database) -> PromptCatalog:
    return PromptCatalog(JobStore(database))


async def test_versions_are_numbered_and_the_newest_is_current(catalog: PromptCatalog) -> None:
    for text in ("one", "two", "three"):
        record = await catalog.create_version(_version(text))
    assert (record.prompt.current_version, record.prompt.latest_version, record.version.version) == (3, 3, 3)
    current = await catalog.get("acme", "greet")
    assert current.version.messages[0]["content"] == "three {{ name }}"
    assert (await catalog.get("acme", "greet", 1)).version.messages[0]["content"] == "one {{ name }}"
    assert [v.version for v in await catalog.versions("acme", "greet")] == [3, 2, 1]


async def test_rollback_moves_the_pointer_back_and_a_new_version_moves_it_on(catalog: PromptCatalog) -> None:
    for text in ("one", "two", "three"):
        await catalog.create_version(_version(text))
    back = await catalog.rollback("acme", "greet", None)
    assert (back.prompt.current_version, back.prompt.latest_version, back.version.version) == (2, 3, 2)
    assert (await catalog.rollback("acme", "greet", 1)).prompt.current_version == 1
    with pytest.raises(Conflict, match="at version 1"):
        await catalog.rollback("acme", "greet", None)
    with pytest.raises(NotFound) as caught:
        await catalog.rollback("acme", "greet", 7)
    assert caught.value.param == "version"
    newest = await catalog.create_version(_version("four"))
    assert (newest.prompt.current_version, newest.version.version) == (4, 4)  # never reuses a number


async def test_tenants_see_only_their_own_prompts(catalog: PromptCatalog) -> None:
    await catalog.create_version(_version("acme's"))
    await catalog.create_version(_version("globex's", tenant="globex"))
    await catalog.create_version(_version("other", tenant="globex", prompt_id="other"))
    assert (await catalog.get("acme", "greet")).version.messages[0]["content"].startswith("acme's")
    assert (await catalog.get("globex", "greet")).prompt.current_version == 1
    with pytest.raises(NotFound):
        await catalog.get("acme", "other")
    with pytest.raises(NotFound):
        await catalog.versions("acme", "other")
    with pytest.raises(NotFound):
        await catalog.rollback("acme", "other", 1)
    assert [r.prompt.id for r in await catalog.list_prompts("globex", limit=10, after=None)] == ["greet", "other"]
    assert [r.prompt.id for r in await catalog.list_prompts("globex", limit=10, after="greet")] == ["other"]
    assert [r.prompt.id for r in await catalog.list_prompts("acme", limit=10, after=None)] == ["greet"]


async def test_concurrent_writers_never_share_a_version_number(catalog: PromptCatalog) -> None:
    records = await asyncio.gather(*(catalog.create_version(_version(f"v{i}")) for i in range(6)))
    assert sorted(r.version.version for r in records) == [1, 2, 3, 4, 5, 6]
    assert (await catalog.get("acme", "greet")).prompt.latest_version == 6


async def test_the_library_reads_the_database_once_per_version_and_once_per_ttl(catalog: PromptCatalog) -> None:
    library = PromptLibrary(catalog, ttl_s=60.0)
    await catalog.create_version(_version("one"))
    first = await library.resolve("acme", "greet", None)
    for _ in range(50):
        assert await library.resolve("acme", "greet", None) is first
    assert library.reads == 1
    # Written elsewhere (another gateway): not seen until the TTL passes...
    await catalog.create_version(_version("two"))
    assert (await library.resolve("acme", "greet", None)).version == 1
    library.ttl_s = 0.0
    assert (await library.resolve("acme", "greet", None)).version == 2
    # ...written through this gateway: seen at once. A pinned version is immutable: cached for good.
    library.ttl_s = 60.0
    library.written("acme", await catalog.rollback("acme", "greet", 1))
    assert (await library.resolve("acme", "greet", None)).version == 1
    reads = library.reads
    assert (await library.resolve("acme", "greet", 2)).version == 2  # compiled when it was current
    assert library.reads == reads
    await catalog.create_version(_version("three"))
    assert (await library.resolve("acme", "greet", 3)).version == 3
    assert (await library.resolve("acme", "greet", 3)).version == 3
    assert library.reads == reads + 1


async def test_a_missing_prompt_is_remembered_and_named(catalog: PromptCatalog) -> None:
    library = PromptLibrary(catalog, ttl_s=60.0)
    for _ in range(5):
        with pytest.raises(NotFound) as caught:
            await library.resolve("acme", "nope", None)
        assert caught.value.param == "prompt.id"
    assert library.reads == 1
    await catalog.create_version(_version("one"))
    with pytest.raises(NotFound) as caught:
        await library.resolve("acme", "greet", 9)
    assert caught.value.param == "prompt.version"
    with pytest.raises(NotFound):  # another tenant's prompt does not exist for this one
        await library.resolve("globex", "greet", 1)


async def test_concurrent_misses_share_one_read(catalog: PromptCatalog) -> None:
    library = PromptLibrary(catalog, ttl_s=60.0)
    await catalog.create_version(_version("one"))
    found = await asyncio.gather(*(library.resolve("acme", "greet", None) for _ in range(20)))
    assert {id(f) for f in found} == {id(found[0])}
    assert library.reads == 1
