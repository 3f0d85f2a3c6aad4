"""Signed checkpoints: an Ed25519 signature over the audit log's head.

The hash chain shows that no record was changed *after* the head was fixed; it
cannot show that the whole log was not rewritten and re-chained. A signature
over the head by a key the recipient trusts can: without the private key a
rewritten log gets a new head that no signature covers.

Keys are PEM files (PKCS #8 private key, SubjectPublicKeyInfo public key), as
``openssl pkey`` reads them. The signature file (beside the log) is
canonical JSON::

    {"algorithm": "ed25519", "head": "<64 hex>", "public_key_sha256": "<64 hex>",
     "signature": "<128 hex>"}

The signed message is ``b"medaug-log-head/1:" + head`` (ASCII), so the
signature cannot be replayed as a signature over anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medaug.canonical import sha256_hex
from medaug.deid.keys import write_secret_file
from medaug.atomic import write_atomic
from medaug.canonical import canonical_json
from medaug.dataset import layout
from medaug.errors import UsageError
from medaug.inputs import read_regular_file

#: Largest PEM key file read.
_MAX_KEY_BYTES = 64 * 1024

ALGORITHM = "ed25519"
_CONTEXT = b"medaug-log-head/1:"


def _crypto() -> Any:
    """The ``cryptography`` Ed25519 and serialization modules, or a clear error."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - depends on the installation
        raise UsageError("signed audit logs need the 'cryptography' package (pip install cryptography)") from None
    return ed25519, serialization


def _message(head: str) -> bytes:
    return _CONTEXT + head.encode("ascii")


def _public_bytes(public_key: Any) -> bytes:
    _, serialization = _crypto()
    raw: bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


def write_signing_keypair(path: Path) -> Path:
    """Write a new Ed25519 private key to ``path`` (mode 0600) and its public key beside it.

    Parameters
    ----------
    path : Path
        Private key file; must not exist. The public key goes to ``path`` + ``.pub``.

    Returns
    -------
    Path
        The public key file.

    Raises
    ------
    UsageError
        When either file exists or cannot be written.
    """
    ed25519, serialization = _crypto()
    path = Path(path)
    public_path = path.with_name(path.name + ".pub")
    if public_path.exists():
        raise UsageError(f"public key file already exists, refusing to overwrite: {public_path}")
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_secret_file(path, pem)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    return public_path


def load_private_key(path: Path) -> Any:
    """Load an Ed25519 private key (PEM, unencrypted); a run checks it before its first series.

    Raises
    ------
    UsageError
        When the file is not a regular file or not an Ed25519 private key.
    """
    ed25519, serialization = _crypto()
    data = read_regular_file(Path(path), what="signing key", max_bytes=_MAX_KEY_BYTES)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"signing key is not an unencrypted PEM private key: {path}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"signing key is not an Ed25519 key: {path}")
    return key


def load_public_key(path: Path) -> Any:
    """Load an Ed25519 public key (PEM).

    Raises
    ------
    UsageError
        When the file is missing or not an Ed25519 public key.
    """
    ed25519, serialization = _crypto()
    try:
        key = serialization.load_pem_public_key(read_regular_file(Path(path), what="public key", max_bytes=_MAX_KEY_BYTES))
    except (ValueError, TypeError):
        raise UsageError(f"public key is not a PEM public key: {path}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise UsageError(f"public key is not an Ed25519 key: {path}")
    return key


def sign_head(private_key_path: Path, head: str) -> dict[str, str]:
    """Sign a log head.

    Parameters
    ----------
    private_key_path : Path
        PEM private key from :func:`write_signing_keypair`.
    head : str
        SHA-256 (hex) of the log's last line.

    Returns
    -------
    dict
        The content of the dataset's signature file.
    """
    private = load_private_key(private_key_path)
    signature: bytes = private.sign(_message(head))
    return {
        "algorithm": ALGORITHM,
        "head": head,
        "public_key_sha256": sha256_hex(_public_bytes(private.public_key())),
        "signature": signature.hex(),
    }


def signature_problems(signature: object, head: str, public_key: Any) -> list[str]:
    """Why ``signature`` (the parsed signature file) does not sign ``head`` under ``public_key``.

    Returns
    -------
    list of str
        Empty when the signature is valid.
    """
    from cryptography.exceptions import InvalidSignature

    if not isinstance(signature, dict):
        return ["the signature file is not a JSON object"]
    problems: list[str] = []
    if signature.get("algorithm") != ALGORITHM:
        problems.append("the signature's algorithm is not ed25519")
    if signature.get("head") != head:
        problems.append("the signed head is not the head of the log")
    if signature.get("public_key_sha256") != sha256_hex(_public_bytes(public_key)):
        problems.append("the log was signed by another key than the one given")
    try:
        raw = bytes.fromhex(str(signature.get("signature", "")))
        public_key.verify(raw, _message(head))
    except (ValueError, InvalidSignature):
        problems.append("the signature does not verify over the log's head with the given public key")
    return problems


def write_signature(outdir: Path, private_key_path: Path, head: str) -> None:
    """Sign ``head`` and write the signature file of the dataset in ``outdir`` (atomically)."""
    signature = sign_head(private_key_path, head)
    data = (canonical_json(signature) + "\n").encode("ascii")
    write_atomic(layout.signature_path(outdir), lambda f: f.write(data))


def sign_dataset(outdir: Path, private_key_path: Path) -> str:
    """Sign an existing dataset: verify it first, then sign its log's head (``audit sign``).

    Returns
    -------
    str
        The head signed.

    Raises
    ------
    UsageError
        When the dataset does not verify (a dataset is signed only as it was made) or
        the key is unusable.
    """
    from medaug.audit.verify import verify_dataset

    load_private_key(private_key_path)
    result = verify_dataset(Path(outdir))
    if not result.ok:
        raise UsageError(f"the dataset does not verify ({len(result.problems)} problem(s)); run audit verify")
    write_signature(Path(outdir), private_key_path, result.head)
    return result.head
