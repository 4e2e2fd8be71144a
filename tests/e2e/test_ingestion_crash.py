"""kill -9 of a server mid-ingestion: after the restart the file's ingestion job resumes and the store
holds every chunk exactly once (chunk ids are derived from store, file and position, so a batch
written twice replaces itself). Run on both metadata databases, and on both vector indexes."""

from __future__ import annotations

import asyncio
import pydoc_data.topics
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from strata.apps import default_app_path
from strata.orchestration.chunking import chunk_text
from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SIZE, OVERLAP, BATCH = 40, 8, 4


def _spec(tmp_path: Path) -> Path:
    spec = yaml.safe_load(default_app_path().read_text())
    spec["workflows"] = {"workers": 1, "lease_s": 2, "poll_ms": 20}
    spec["retrieval"] = {"chunk_size_tokens": SIZE, "chunk_overlap_tokens": OVERLAP, "embed_batch_size": BATCH}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _document() -> str:
    """Real prose: Python's own bundled documentation topics, about 150 chunks of it."""
    topics = pydoc_data.topics.topics
    text = "\n\n".join(topics[name] for name in sorted(topics))
    return " ".join(text.split()[: SIZE * 120])


async def _pg_positions(url: str, store_id: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        tables = await connection.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'strata_vectors_%'")
        positions: list[int] = []
        for row in tables:
            query = f"SELECT position FROM {row['tablename']} WHERE store_id = $1"
            positions += [r["position"] for r in await connection.fetch(query, store_id)]
        return positions
    finally:
        await connection.close()


def _positions(vectors_url: str, store_id: str) -> list[int]:
    """The positions of the store's chunks, read from the index's own storage (one per stored chunk)."""
    if vectors_url.startswith("postgresql://"):
        return asyncio.run(_pg_positions(vectors_url, store_id))
    database = Path(vectors_url) / "chunks.db"
    if not database.exists():
        return []
    with sqlite3.connect(database, timeout=30) as db:
        return [row[0] for row in db.execute("SELECT position FROM chunks WHERE store_id = ?", (store_id,))]


def _file_status(client: httpx.Client, store_id: str, file_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/vector_stores/{store_id}/files/{file_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(params=["embedded", "pgvector"])
def vectors_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "pgvector":
        return str(request.getfixturevalue("pgvector_url"))
    return str(tmp_path / "vectors")


def test_kill_9_mid_ingestion_resumes_without_duplicates(database_url: str, vectors_url: str, tmp_path: Path) -> None:
    text = _document()
    expected = len(chunk_text(text, SIZE, OVERLAP))
    env = {"STRATA_DATABASE_URL": database_url, "STRATA_ARTIFACTS_URL": str(tmp_path / "artifacts"),
           "STRATA_VECTORS_URL": vectors_url}  # fmt: skip
    key = f"sk-strata-test-{secrets.token_hex(16)}"
    spec = _spec(tmp_path)
    with ServerProcess(spec, env=env, api_key=key) as first, first.http() as client:
        upload = client.post("/v1/files", files={"file": ("python-docs.txt", text.encode())},
                             data={"purpose": "assistants"})  # fmt: skip
        assert upload.status_code == 200, upload.text
        file_id = upload.json()["id"]
        store_id = client.post("/v1/vector_stores", json={"name": "docs"}).json()["id"]
        attached = client.post(f"/v1/vector_stores/{store_id}/files", json={"file_id": file_id})
        assert attached.json()["status"] == "in_progress"
        deadline = time.monotonic() + 120
        while len(_positions(vectors_url, store_id)) < expected // 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.process is not None
        first.process.kill()  # SIGKILL: no shutdown, the job's lease left held, the graph never saved
        first.process.wait()
    at_kill = len(_positions(vectors_url, store_id))
    assert 0 < at_kill < expected, f"the kill landed at {at_kill} of {expected} chunks: nothing was tested"
    with ServerProcess(spec, env=env, api_key=key) as second, second.http() as client:
        deadline = time.monotonic() + 180
        while _file_status(client, store_id, file_id)["status"] == "in_progress" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _file_status(client, store_id, file_id)["status"] == "completed"
        positions = _positions(vectors_url, store_id)
        assert sorted(positions) == list(range(expected))  # every chunk, each once
        found = client.post(f"/v1/vector_stores/{store_id}/search", json={"query": "the with statement",
                                                                          "max_num_results": 3})  # fmt: skip
        assert len(found.json()["data"]) == 3
    print(f"{at_kill} of {expected} chunks written at the kill")
