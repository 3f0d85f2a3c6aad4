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


#: Reason codes of series a policy does not cover (reported apart from unusable inputs).
OUT_OF_SCOPE_MODALITY = "modality-not-in-policy"
OUT_OF_SCOPE_BODY_PART = "body-part-not-in-policy"
OUT_OF_SCOPE_SERIES_KIND = "series-kind-not-in-policy"
OUT_OF_SCOPE_LOCALIZER = "localizer-not-in-policy"


@dataclass(frozen=True)
class Scope:
    """Which series of its modalities a policy covers.

    Parameters
    ----------
    body_parts : tuple of str
        Body Part Examined values covered; empty: any.
    series_kinds : tuple of str
        Image Type value 1 covered (``original``, ``derived``).
    localizers : bool
        Whether localizer (scout) images are covered.
    """

    body_parts: tuple[str, ...] = ()
    series_kinds: tuple[str, ...] = ("original", "derived")
    localizers: bool = False


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
    scope: Scope = Scope()

    def covers(self, modality: str) -> bool:
        """Whether the policy applies to series of ``modality``.

        Examples
        --------
        >>> Policy("p", "1", "d", ("CT",), DeidOptions(), 0, True, 0, AugmentSpec(),
        ...        OutputPolicy(), {}, "0" * 64).covers("MR")
        False
        """
        return modality in self.modalities

    def out_of_scope(
        self, modality: str, *, body_part: str = "", image_type: tuple[str, ...] = (),
        anatomic_region: tuple[str, str] = ("", ""),
    ) -> str | None:
        """Why a series is not covered (a reason code), or None when the policy applies to it.

        Examples
        --------
        >>> p = Policy("p", "1", "d", ("CT",), DeidOptions(), 0, True, 0, AugmentSpec(),
        ...            OutputPolicy(), {}, "0" * 64, Scope(body_parts=("CHEST",)))
        >>> p.out_of_scope("CT", body_part="ABDOMEN"), p.out_of_scope("CT", body_part="chest")
        ('body-part-not-in-policy', None)
        """
        if not self.covers(modality):
            return OUT_OF_SCOPE_MODALITY
        values = [v.strip().upper() for v in image_type]
        if not self.scope.localizers and "LOCALIZER" in values:
            return OUT_OF_SCOPE_LOCALIZER
        kind = values[0].lower() if values else "original"
        if kind in ("original", "derived") and kind not in self.scope.series_kinds:
            return OUT_OF_SCOPE_SERIES_KIND
        if self.scope.body_parts:
            # Body Part Examined, or the Anatomic Region code (its CID 4 code value or meaning).
            named = {body_part.strip().upper(), anatomic_region[0].strip(), anatomic_region[1].strip().upper()} - {""}
            if not named & set(self.scope.body_parts):
                return OUT_OF_SCOPE_BODY_PART
        return None
