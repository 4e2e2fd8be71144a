"""The documentation holds together: links resolve, every page is in the site's nav, and the
reference generators cover every spec field, CLI command and HTTP route.

`make docs` (run by CI) builds the site with ``mkdocs build --strict``, which checks links and
anchors too; these tests catch the same mistakes in `make test`, without the doc tooling.
"""

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from strata.apps import default_app
from strata.gateway.app import create_app
from strata.spec import AppSpec

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "tools" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = load_generator()
GENERATED = {DOCS / "reference" / name for name in gen_docs.GENERATED_PAGES}


def relative_links(page: Path) -> list[str]:
    """Links to files of this repository: no URL scheme, not an anchor of the same page; code excluded."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() and path not in GENERATED:
            broken.append(target)
    return broken


def hand_written_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if p not in GENERATED)


def test_readme_links_resolve() -> None:
    links = relative_links(ROOT / "README.md")
    assert any(link.startswith("docs/") for link in links)
    assert broken_links(ROOT / "README.md") == []


def test_readme_stays_an_entry_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 12_000, "the README is the entry: long sections belong in docs/"
    for heading in ("## The two commands", "## A first request", "## Architecture", "## Documentation"):
        assert heading in readme


@pytest.mark.parametrize("page", hand_written_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [page for item in node for page in pages(item)]
        if isinstance(node, dict):
            return [page for value in node.values() for page in pages(value)]
        return []

    in_nav = {DOCS / page for page in pages(config["nav"])}
    assert set(hand_written_pages()) | GENERATED == in_nav


def test_spec_reference_lists_every_field() -> None:
    text = gen_docs.spec_reference()
    sections = dict(re.findall(r"^## (\w+) \{#[\w-]+\}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL))
    models = gen_docs.spec_models(AppSpec)
    assert len(models) > 20  # AppSpec and everything it contains, resilience and access included
    for model, _ in models:
        for field in model.model_fields:
            assert f"| `{field}` |" in sections[model.__name__], f"{model.__name__}.{field}"
    assert "ForwardRef" not in text


def test_http_reference_lists_every_route() -> None:
    text = gen_docs.http_reference()
    document = create_app(default_app()).openapi()
    assert document["openapi"].startswith("3.1")
    for path, item in document["paths"].items():
        for method in item:
            if method in gen_docs.HTTP_METHODS:
                assert f"### {method.upper()} `{path}`" in text
    assert "### POST `/v1/telemetry`" in text  # the autonomy app's extension routes


@pytest.mark.slow
def test_cli_reference_lists_every_command() -> None:
    text = gen_docs.cli_reference(gen_docs.start_cli_reference())
    commands = ("serve", "worker", "validate", "keys create", "rollout start", "deploy kubernetes", "demo autonomy")
    for command in commands:
        assert f"## `strata {command}`" in text
    assert "--database-url" in text
