"""A plain install reads the common compressed transfer syntaxes: the codecs are core dependencies."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

REPO = Path(__file__).resolve().parents[1]
#: Plugin name (as pydicom reports it) -> the distribution that provides it.
PLUGIN_PACKAGES = {"pylibjpeg": "pylibjpeg-libjpeg", "pyjpegls": "pyjpegls", "pydicom": "pydicom"}
CORE = {"pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "pyjpegls"}


def _core_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}


def test_the_codecs_are_core_dependencies() -> None:
    assert CORE <= _core_dependencies()


@pytest.mark.parametrize(
    "syntax", [JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, RLELossless,
               JPEGBaseline8Bit],
)
def test_every_common_transfer_syntax_has_a_decoder_from_a_core_dependency(syntax: str) -> None:
    decoder = get_decoder(syntax)
    assert decoder.is_available
    core = _core_dependencies()
    providers = {PLUGIN_PACKAGES.get(name, name) for name in decoder.available_plugins}
    # Each available plugin's package is installed, and at least one is declared by medaug itself.
    assert providers & (core | {"pydicom"}), (syntax, providers)
    for package in providers & core:
        metadata.version(package)
