"""Key files: creation, permissions, refusal to overwrite, clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from medaug.cli import main
from medaug.deid.keys import Key, load_key, write_key
from medaug.errors import UsageError


def test_write_key_is_private_and_256_bits(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert len(key.secret) == 32
    assert key.secret.hex() not in repr(key)


def test_keys_differ_and_fingerprint_is_not_the_key(tmp_path: Path) -> None:
    write_key(tmp_path / "a")
    write_key(tmp_path / "b")
    a, b = load_key(tmp_path / "a"), load_key(tmp_path / "b")
    assert a.secret != b.secret
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint not in a.secret.hex()
    assert len(a.fingerprint) == 16


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_key(path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        write_key(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "key file not found"), (b"abc\n", "wrong size"), (b"zz" * 32, "not a hex")],
)
def test_load_key_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "k"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load_key(path)


def test_subkeys_are_per_kind() -> None:
    key = Key(bytes(32))
    assert key.subkey("uid") != key.subkey("patient-id")
    assert key.subkey("uid") == Key(bytes(32)).subkey("uid")


def test_cli_keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.key"
    assert main(["keygen", str(path)]) == 0
    assert load_key(path).secret.hex() not in capsys.readouterr().out
    assert main(["keygen", str(path)]) == 2
