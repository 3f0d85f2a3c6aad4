"""Where an export puts its volumes and which index files it writes: nnU-Net v2, MONAI, plain NIfTI.

Every layout takes *case names* (built by :func:`case_name` from pseudonyms,
volume tokens and variant numbers only) and returns relative POSIX paths, and
the content of its index files once every case is known.

nnU-Net v2 (``nnunet``)::

    Dataset<NNN>_<name>/imagesTr/<case>_0000.nii.gz
    Dataset<NNN>_<name>/dataset.json

MONAI (``monai``), a Decathlon-style datalist ``load_decathlon_datalist`` reads::

    imagesTr/<case>.nii.gz
    datalist.json          {"training": [{"image": "imagesTr/<case>.nii.gz"}, ...]}

plain (``nifti``)::

    images/<case>.nii.gz
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from medaug.dataset.layout import SeriesFolder
from medaug.errors import UsageError

#: The layouts, by the name ``--format`` takes.
FORMATS = ("nnunet", "monai", "nifti")

#: File ending of every exported volume.
FILE_ENDING = ".nii.gz"

#: What a ``--name`` may hold (nnU-Net uses it in a folder name).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def case_name(folder: SeriesFolder) -> str:
    """The case name of an output series: ``<patient>_<volume>_v<variant>``.

    Examples
    --------
    >>> case_name(SeriesFolder("UNKNOWN", "0123456789ab", "ba9876543210", 2))
    'UNKNOWN_ba9876543210_v2'
    """
    return f"{folder.patient}_{folder.volume}_v{folder.variant}"


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


@dataclass(frozen=True)
class Case:
    """One exported volume: its case name, its path in the export and its modality."""

    name: str
    path: PurePosixPath
    modality: str


class ExportLayout:
    """Base of the layouts: where a case goes and the index files of a finished export."""

    name: str = ""

    def image_path(self, case: str) -> PurePosixPath:
        """Where the volume of ``case`` goes, relative to the export folder."""
        raise NotImplementedError

    def index_files(self, cases: Sequence[Case]) -> dict[PurePosixPath, bytes]:
        """The index files (relative path -> bytes) describing ``cases``."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The layout's options, as recorded in the export manifest."""
        return {}

    def check(self, modalities: set[str]) -> None:
        """Refuse, before anything is written, a dataset whose modalities the layout cannot hold."""


@dataclass(frozen=True)
class NnUNet(ExportLayout):
    """nnU-Net v2 raw dataset: one channel (``_0000``), labels ``{"background": 0}`` until label maps are exported.

    Parameters
    ----------
    dataset_id : int
        1 to 999 (the ``<NNN>`` of ``Dataset<NNN>_<name>``).
    dataset_name : str
        Letters, digits and hyphens, starting with a letter or digit.
    """

    dataset_id: int = 1
    dataset_name: str = "medaug"
    name: str = "nnunet"

    def __post_init__(self) -> None:
        if not 1 <= self.dataset_id <= 999:
            raise UsageError("--dataset-id must lie in 1..999")
        if _NAME.fullmatch(self.dataset_name) is None:
            raise UsageError("--name may hold only letters, digits and hyphens (at most 64, no leading hyphen)")

    @property
    def root(self) -> PurePosixPath:
        """The dataset folder ``Dataset<NNN>_<name>``."""
        return PurePosixPath(f"Dataset{self.dataset_id:03d}_{self.dataset_name}")

    def image_path(self, case: str) -> PurePosixPath:
        return self.root / "imagesTr" / f"{case}_0000{FILE_ENDING}"

    def check(self, modalities: set[str]) -> None:
        if len(modalities) > 1:
            raise UsageError(
                f"an nnU-Net dataset has one channel, the dataset holds {len(modalities)} modalities: "
                "export with --format monai or nifti"
            )

    def index_files(self, cases: Sequence[Case]) -> dict[PurePosixPath, bytes]:
        modalities = sorted({c.modality for c in cases})
        self.check(set(modalities))
        channel = modalities[0] if modalities else "CT"
        body = {
            "channel_names": {"0": channel},
            "labels": {"background": 0},
            "numTraining": len(cases),
            "file_ending": FILE_ENDING,
            "name": self.dataset_name,
            "description": "exported by medaug from a de-identified dataset",
        }
        return {self.root / "dataset.json": _json_bytes(body)}

    def options(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "name": self.dataset_name}


@dataclass(frozen=True)
class Monai(ExportLayout):
    """A MONAI datalist (Decathlon schema, ``training`` list of ``{"image": path}``, paths relative to the export)."""

    name: str = "monai"

    def image_path(self, case: str) -> PurePosixPath:
        return PurePosixPath("imagesTr", f"{case}{FILE_ENDING}")

    def index_files(self, cases: Sequence[Case]) -> dict[PurePosixPath, bytes]:
        body = {"training": [{"image": c.path.as_posix()} for c in cases]}
        return {PurePosixPath("datalist.json"): _json_bytes(body)}


@dataclass(frozen=True)
class Plain(ExportLayout):
    """NIfTI files and the export manifest only."""

    name: str = "nifti"

    def image_path(self, case: str) -> PurePosixPath:
        return PurePosixPath("images", f"{case}{FILE_ENDING}")

    def index_files(self, cases: Sequence[Case]) -> dict[PurePosixPath, bytes]:
        return {}


def make_layout(fmt: str, *, dataset_id: int = 1, name: str = "medaug") -> ExportLayout:
    """The layout ``--format fmt`` names.

    Raises
    ------
    UsageError
        For an unknown format or bad nnU-Net options.
    """
    if fmt == "nnunet":
        return NnUNet(dataset_id=dataset_id, dataset_name=name)
    if fmt == "monai":
        return Monai()
    if fmt == "nifti":
        return Plain()
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}")


__all__ = ["FILE_ENDING", "FORMATS", "Case", "ExportLayout", "Monai", "NnUNet", "Plain", "case_name", "make_layout"]
