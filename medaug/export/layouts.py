"""Where an export puts its volumes and label maps, which cases it takes, and which index files it writes.

Every layout takes *case names* (built by :func:`case_name` from pseudonyms,
volume tokens and variant numbers only) and returns relative POSIX paths, and
the content of its index files once every case is known. A series' label
objects are numbered as in the dataset (``label-<n>.dcm``); the training
layouts carry one of them (``--label N``, default 1), the plain layout all.

nnU-Net v2 (``nnunet``)::

    Dataset<NNN>_<name>/imagesTr/<case>_0000.nii.gz
    Dataset<NNN>_<name>/labelsTr/<case>.nii.gz      when some series has label object N
    Dataset<NNN>_<name>/dataset.json

MONAI (``monai``), a Decathlon-style datalist ``load_decathlon_datalist`` reads::

    imagesTr/<case>.nii.gz
    labelsTr/<case>.nii.gz
    datalist.json          {"training": [{"image": ..., "label": ...}, ...], "unlabelled": [{"image": ...}, ...]}

plain (``nifti``)::

    images/<case>.nii.gz
    labels/<case>_label-<n>.nii.gz
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from medaug.dataset.layout import SeriesFolder
from medaug.errors import UsageError

if TYPE_CHECKING:  # the command line reads this module's names without loading the label reader
    from medaug.export.labels import LabelSet

#: The layouts, by the name ``--format`` takes.
FORMATS = ("nnunet", "monai", "nifti")

#: File ending of every exported volume.
FILE_ENDING = ".nii.gz"

#: Reason code of a series not exported to nnU-Net because it lacks the label object the others have.
NO_LABEL = "no-label"

#: Reason code of a series not exported to nnU-Net because its label map's segments overlap.
OVERLAPPING = "overlapping-segments"

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
class CaseLabel:
    """One label map of a case: the label object's number in its series and the map's path in the export."""

    number: int
    path: PurePosixPath


@dataclass(frozen=True)
class Case:
    """One exported volume: its case name, its path in the export, its modality and its label maps."""

    name: str
    path: PurePosixPath
    modality: str
    labels: tuple[CaseLabel, ...] = ()

    def label(self, number: int) -> CaseLabel | None:
        """The map of label object ``number``, or None."""
        return next((c for c in self.labels if c.number == number), None)


class ExportLayout:
    """Base of the layouts: where a case goes and the index files of a finished export."""

    name: str = ""

    def image_path(self, case: str) -> PurePosixPath:
        """Where the volume of ``case`` goes, relative to the export folder."""
        raise NotImplementedError

    def label_path(self, case: str, number: int) -> PurePosixPath:
        """Where the map of label object ``number`` of ``case`` goes, relative to the export folder."""
        raise NotImplementedError

    def label_objects(self, numbers: Sequence[int]) -> tuple[int, ...]:
        """Which of a series' label objects (by number) the layout carries: all of them unless it chooses one."""
        return tuple(sorted(numbers))

    def refuse(self, labels: Mapping[int, int | str], *, labelled: bool) -> str | None:
        """Why a case is not taken at all, or None.

        Parameters
        ----------
        labels : mapping
            For each carried label object of the series: the number of layers
            of its map, or the reason code it could not be read.
        labelled : bool
            Whether some series of the dataset has a label object the layout carries.
        """
        return None

    def index_files(self, cases: Sequence[Case], labels: Mapping[int, "LabelSet"]) -> dict[PurePosixPath, bytes]:
        """The index files (relative path -> bytes) describing ``cases``; ``labels`` by label object number."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The layout's options, as recorded in the export manifest."""
        return {}

    def check(self, modalities: set[str]) -> None:
        """Refuse, before anything is written, a dataset whose modalities the layout cannot hold."""


def _check_label(label: int) -> None:
    # 0 names no label object (they are numbered from 1): the images only.
    if not 0 <= label <= 9999:
        raise UsageError("--label must lie in 0..9999 (the n of a series' label-<n>.dcm; 0 for the images only)")


@dataclass(frozen=True)
class NnUNet(ExportLayout):
    """nnU-Net v2 raw dataset: one channel (``_0000``), and one label map per case when the dataset is labelled.

    nnU-Net wants a label map for every training case once ``labelsTr`` is
    used, and one integer value per voxel: when some series of the dataset has
    label object ``label``, a series without it is not taken (:data:`NO_LABEL`),
    nor one whose map has overlapping segments (:data:`OVERLAPPING`) or cannot
    be read (the reader's code). Without any, the dataset has images only and
    ``labels`` is ``{"background": 0}``.

    Parameters
    ----------
    dataset_id : int
        1 to 999 (the ``<NNN>`` of ``Dataset<NNN>_<name>``).
    dataset_name : str
        Letters, digits and hyphens, starting with a letter or digit.
    label : int
        The label object of each series that becomes its label map.
    """

    dataset_id: int = 1
    dataset_name: str = "medaug"
    label: int = 1
    name: str = "nnunet"

    def __post_init__(self) -> None:
        if not 1 <= self.dataset_id <= 999:
            raise UsageError("--dataset-id must lie in 1..999")
        if _NAME.fullmatch(self.dataset_name) is None:
            raise UsageError("--name may hold only letters, digits and hyphens (at most 64, no leading hyphen)")
        _check_label(self.label)

    @property
    def root(self) -> PurePosixPath:
        """The dataset folder ``Dataset<NNN>_<name>``."""
        return PurePosixPath(f"Dataset{self.dataset_id:03d}_{self.dataset_name}")

    def image_path(self, case: str) -> PurePosixPath:
        return self.root / "imagesTr" / f"{case}_0000{FILE_ENDING}"

    def label_path(self, case: str, number: int) -> PurePosixPath:
        return self.root / "labelsTr" / f"{case}{FILE_ENDING}"

    def label_objects(self, numbers: Sequence[int]) -> tuple[int, ...]:
        return (self.label,) if self.label in numbers else ()

    def refuse(self, labels: Mapping[int, int | str], *, labelled: bool) -> str | None:
        if not labelled:
            return None
        chosen = labels.get(self.label)
        if chosen is None:
            return NO_LABEL
        if isinstance(chosen, str):
            return chosen
        return OVERLAPPING if chosen > 1 else None

    def check(self, modalities: set[str]) -> None:
        if len(modalities) > 1:
            raise UsageError(
                f"an nnU-Net dataset has one channel, the dataset holds {len(modalities)} modalities: "
                "export with --format monai or nifti"
            )

    def index_files(self, cases: Sequence[Case], labels: Mapping[int, "LabelSet"]) -> dict[PurePosixPath, bytes]:
        modalities = sorted({c.modality for c in cases})
        self.check(set(modalities))
        channel = modalities[0] if modalities else "CT"
        names: dict[str, int] = {"background": 0}
        if self.label in labels:
            names.update(labels[self.label].names())
        body = {
            "channel_names": {"0": channel},
            "labels": names,
            "numTraining": len(cases),
            "file_ending": FILE_ENDING,
            "name": self.dataset_name,
            "description": "exported by medaug from a de-identified dataset",
        }
        return {self.root / "dataset.json": _json_bytes(body)}

    def options(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "name": self.dataset_name, "label": self.label}


@dataclass(frozen=True)
class Monai(ExportLayout):
    """A MONAI datalist (Decathlon schema, paths relative to the export).

    Without label maps, ``training`` lists every case as ``{"image": path}``.
    When some case has label object ``label``, ``training`` lists those cases as
    ``{"image": path, "label": path}`` and ``unlabelled`` the others as
    ``{"image": path}``. Overlapping segments are kept as layers (a 4-D map).
    """

    label: int = 1
    name: str = "monai"

    def __post_init__(self) -> None:
        _check_label(self.label)

    def image_path(self, case: str) -> PurePosixPath:
        return PurePosixPath("imagesTr", f"{case}{FILE_ENDING}")

    def label_path(self, case: str, number: int) -> PurePosixPath:
        return PurePosixPath("labelsTr", f"{case}{FILE_ENDING}")

    def label_objects(self, numbers: Sequence[int]) -> tuple[int, ...]:
        return (self.label,) if self.label in numbers else ()

    def index_files(self, cases: Sequence[Case], labels: Mapping[int, "LabelSet"]) -> dict[PurePosixPath, bytes]:
        def item(case: Case) -> dict[str, str]:
            found = case.label(self.label)
            entry = {"image": case.path.as_posix()}
            return entry if found is None else {**entry, "label": found.path.as_posix()}

        items = [item(c) for c in cases]
        body: dict[str, list[dict[str, str]]] = {"training": items}
        if any("label" in i for i in items):
            body = {"training": [i for i in items if "label" in i]}
            unlabelled = [i for i in items if "label" not in i]
            if unlabelled:
                body["unlabelled"] = unlabelled
        return {PurePosixPath("datalist.json"): _json_bytes(body)}

    def options(self) -> dict[str, Any]:
        return {"label": self.label}


@dataclass(frozen=True)
class Plain(ExportLayout):
    """NIfTI files and the export manifest only."""

    name: str = "nifti"

    def image_path(self, case: str) -> PurePosixPath:
        return PurePosixPath("images", f"{case}{FILE_ENDING}")

    def label_path(self, case: str, number: int) -> PurePosixPath:
        return PurePosixPath("labels", f"{case}_label-{number}{FILE_ENDING}")

    def index_files(self, cases: Sequence[Case], labels: Mapping[int, "LabelSet"]) -> dict[PurePosixPath, bytes]:
        return {}


def make_layout(fmt: str, *, dataset_id: int = 1, name: str = "medaug", label: int = 1) -> ExportLayout:
    """The layout ``--format fmt`` names.

    Raises
    ------
    UsageError
        For an unknown format or bad nnU-Net or label options.
    """
    if fmt == "nnunet":
        return NnUNet(dataset_id=dataset_id, dataset_name=name, label=label)
    if fmt == "monai":
        return Monai(label=label)
    if fmt == "nifti":
        return Plain()
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}")


__all__ = [
    "FILE_ENDING",
    "FORMATS",
    "NO_LABEL",
    "OVERLAPPING",
    "Case",
    "CaseLabel",
    "ExportLayout",
    "Monai",
    "NnUNet",
    "Plain",
    "case_name",
    "make_layout",
]
