"""Every ```python block in docs/ runs (against a real server), unless marked not runnable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import ormevents
from tests.docs.doc_blocks import blocks, pages, run_block

pytestmark = pytest.mark.integration


@pytest.fixture
async def docs_runtime(mongo_uri: str, redis_uri: str) -> AsyncIterator[dict[str, str]]:
    database = f"docs_{uuid.uuid4().hex[:10]}"
    await ormevents.init(mongo_uri=mongo_uri, database=database)
    yield {
        'mongo_uri="mongodb://localhost:27017"': f'mongo_uri="{mongo_uri}"',
        'database="app"': f'database="{database}"',
        "redis://localhost:6379/0": redis_uri,
    }
    await ormevents.close()


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name if p.parent.name == "docs" else f"{p.parent.name}/{p.name}")
async def test_page_examples_run(page: Path, docs_runtime: dict[str, str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for block in blocks(page):
        if block.runnable:
            await run_block(block, namespace, docs_runtime)


def test_unrunnable_blocks_say_why() -> None:
    for page in pages():
        for block in blocks(page):
            if not block.runnable and block.file is None:
                assert "not runnable:" in block.info and len(block.info.split("not runnable:")[1].strip(' "')) > 5, (
                    f"{page.name}:{block.line} must say why it is not runnable"
                )
