"""A loaded, validated policy as plain frozen data.

Build one with :func:`medaug.policy.load.load_policy`; the constructors here
do not validate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medaug.augment.spec import AugmentSpec
from medaug.deid.options import DeidOptions

TransferSyntaxName = Literal["explicit-vr-little-endian", "rle-lossless", "jpeg2000-lossless"]

#: Transfer syntax UIDs of the names a policy may choose (PS3.5 Annex A).
TRANSFER_SYNTAX_UIDS: dict[str, str] = {
    "explicit-vr-little-endian": "1.2.840.10008.1.2.1",
    "rle-lossless": "1.2.840.10008.1.2.5",
    "jpeg2000-lossless": "1.2.840.10008.1.2.4.90",
}


@dataclass(frozen=True)
class OutputPolicy:
    """How derived files are written.

    Parameters
    ----------
    transfer_syntax : str
        One of the names in :data:`TRANSFER_SYNTAX_UIDS`.
    """

    transfer_syntax: TransferSyntaxName = "explicit-vr-little-endian"

    @property
    def transfer_syntax_uid(self) -> str:
        """The DICOM Transfer Syntax UID of :attr:`transfer_syntax`."""
        return TRANSFER_SYNTAX_UIDS[self.transfer_syntax]


@dataclass(frozen=True)
class Policy:
    """A validated policy, within the clinical caps of its modalities.

    Parameters
    ----------
    id, version, description : str
        As written in the file.
    modalities : tuple of str
        DICOM Modality codes the policy applies to.
    deid : DeidOptions
        De-identification options, safe private list and burned-in rules.
    variants_per_series : int
        Augmented variants made of each series.
    include_original : bool
        Whether the de-identified original is written too.
    seed : int
        Run seed.
    augment : AugmentSpec
        Transform bounds (``transforms`` in the file).
    output : OutputPolicy
        Output settings.
    raw : mapping
        The parsed file, as JSON-compatible data.
    content_sha256 : str
        SHA-256 (hex) of the canonical JSON of ``raw``: what an approval binds.
    """

    id: str
    version: str
    description: str
    modalities: tuple[str, ...]
    deid: DeidOptions
    variants_per_series: int
    include_original: bool
    seed: int
    augment: AugmentSpec
    output: OutputPolicy
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    content_sha256: str

    def covers(self, modality: str) -> bool:
        """Whether the policy applies to series of ``modality``.

        Examples
        --------
        >>> Policy("p", "1", "d", ("CT",), DeidOptions(), 0, True, 0, AugmentSpec(),
        ...        OutputPolicy(), {}, "0" * 64).covers("MR")
        False
        """
        return modality in self.modalities
