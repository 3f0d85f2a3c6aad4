"""Shared test fixtures: the synthetic archive, generated once per session from code, and a run key."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks import equal_work
from medaug.deid.keys import write_key

REPO = Path(__file__).resolve().parents[1]


def external(tool: str) -> str:
    """Path of an external validator; skip when absent on a developer machine, fail in CI."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI (installed by `make tools`)")
        pytest.skip(f"{tool} not installed")
    return path


def dciodvfy_kinds(path: Path) -> set[str]:
    """The kinds of error dciodvfy reports for a file (:func:`benchmarks.equal_work.dciodvfy_kinds`)."""
    return equal_work.dciodvfy_kinds(path, external("dciodvfy"))


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly generated copy of the synthetic archive (tests may not modify it)."""
    from fixtures.generate import build_archive

    root = tmp_path_factory.mktemp("archive") / "archive"
    build_archive(root)
    return root


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh pseudonymisation key."""
    path = tmp_path_factory.mktemp("key") / "run.key"
    write_key(path)
    return path


@pytest.fixture(scope="session")
def manifest(archive: Path) -> dict[str, Any]:
    """What the generator planted and built (``<archive>.json`` beside the archive)."""
    data: dict[str, Any] = json.loads(archive.with_suffix(".json").read_text())
    return data
