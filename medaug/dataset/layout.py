"""Where everything of a dataset lives: folders and file names as functions of pseudonyms.

The one owner of the dataset's layout. The run writes through these functions;
``audit verify``, ``scan``, ``trace`` and ``report`` read through them, and the
audit log's kind of an output path (:func:`is_output_path`) is derived from the
same templates, so a writer and a reader cannot disagree on a name.

Layout of a dataset folder (``OUTDIR``)::

    dicom/<patient>/st-<study>/se-<volume>-v<variant>/<n>.dcm   outputs (images)
    dicom/<patient>/st-<study>/se-<volume>-v<variant>/label-<n>.dcm   its labels (SEG, RTSTRUCT)
    audit/log.jsonl                                             the hash-chained log
    audit/signature.json                                        signed log head (optional)
    manifest.json                                               what the dataset is
    .work/                                                      a run's state, removed at the end

``<patient>`` is the keyed patient pseudonym (16 base-32 characters, or
``UNKNOWN``); ``<study>`` and ``<volume>`` are 12 hex digits of a SHA-256 of
the study's and the volume's *new* (keyed) UIDs; ``<variant>`` is 0 for the
de-identified original; ``<n>`` counts the files of a series from 1.

The templates are fields of :class:`Layout`; :data:`LAYOUT` is the one in use.
Every function reads :data:`LAYOUT` when called, so replacing it (a test does)
changes writer and readers together.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: Format of datasets this layout and the record kinds describe (manifest ``format``).
DATASET_FORMAT = "medaug-dataset/1"

#: What each placeholder of a template may hold (the output-path kind is built from these).
_TOKENS = {
    "patient": r"(?:[A-Z2-7]{16}|UNKNOWN)",
    "study": r"[0-9a-f]{12}",
    "volume": r"[0-9a-f]{12}",
    "variant": r"[0-9]{1,4}",
    "number": r"[1-9][0-9]{0,6}",
}


@dataclass(frozen=True)
class Layout:
    """The names of a dataset's folders and files (``str.format`` templates, POSIX paths).

    Attributes
    ----------
    images : str
        Folder of every output image series.
    patient, study, series, image : str
        Templates of the patient folder (``{patient}``), study folder
        (``{study}``), series folder (``{volume}``, ``{variant}``) and file
        (``{number}``) names.
    log, signature, manifest : str
        The audit log, its signature and the manifest, relative to the dataset.
    work, fragments, run_state : str
        A run's scratch folder, where finished series' records wait, and the
        run's identity (policy, key, version) for ``--resume``.
    """

    images: str = "dicom"
    patient: str = "{patient}"
    study: str = "st-{study}"
    series: str = "se-{volume}-v{variant}"
    image: str = "{number}.dcm"
    label: str = "label-{number}.dcm"
    log: str = "audit/log.jsonl"
    signature: str = "audit/signature.json"
    manifest: str = "manifest.json"
    work: str = ".work"
    fragments: str = ".work/series"
    run_state: str = ".work/run.json"


#: The layout in use.
LAYOUT = Layout()


def token(value: str) -> str:
    """12 hex digits naming a study or volume folder: a SHA-256 prefix of a *new* UID.

    Examples
    --------
    >>> token("2.25.1")
    '49b1b035c2cf'
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class SeriesFolder:
    """Where one output series goes: the place of its volume and its variant number.

    Parameters
    ----------
    patient : str
        Patient pseudonym (``UNKNOWN`` without one).
    study : str
        :func:`token` of the de-identified Study Instance UID.
    volume : str
        :func:`token` of the de-identified volume (series UID and first instance UID).
    variant : int
        0 for the de-identified original, 1… for the variants.
    """

    patient: str
    study: str
    volume: str
    variant: int

    @classmethod
    def of(cls, *, patient: str, study_uid: str, series_uid: str, first_instance_uid: str, variant: int) -> "SeriesFolder":
        """The folder of a volume given its de-identified UIDs.

        One source series can hold several volumes (echoes, phases, multi-frame
        objects), so a volume is named by its series and its first instance.
        """
        return cls(patient or "UNKNOWN", token(study_uid), token(f"{series_uid}/{first_instance_uid}"), variant)

    def relative(self) -> PurePosixPath:
        """The folder relative to the dataset."""
        lay = LAYOUT
        return PurePosixPath(
            lay.images,
            lay.patient.format(patient=self.patient),
            lay.study.format(study=self.study),
            lay.series.format(volume=self.volume, variant=self.variant),
        )

    def path(self, outdir: Path) -> Path:
        """The folder inside ``outdir``."""
        return outdir / self.relative()

    @classmethod
    def parse(cls, rel: str) -> "SeriesFolder | None":
        """The series folder named by ``rel`` (POSIX, relative to the dataset), or None.

        Examples
        --------
        >>> SeriesFolder.parse("dicom/UNKNOWN/st-0123456789ab/se-ba9876543210-v2").variant
        2
        """
        lay = LAYOUT
        parts = (re.escape(lay.images), _pattern(lay.patient, named=True), _pattern(lay.study, named=True),
                 _pattern(lay.series, named=True))
        m = re.fullmatch("/".join(parts), rel)
        if m is None:
            return None
        return cls(m["patient"], m["study"], m["volume"], int(m["variant"]))


def image_name(number: int) -> str:
    """File name of the ``number``-th file (from 1) of an output series."""
    return LAYOUT.image.format(number=number)


def label_name(number: int) -> str:
    """File name of the ``number``-th label object (SEG, RTSTRUCT) written beside a series' images."""
    return LAYOUT.label.format(number=number)


def label_number(rel: str) -> int | None:
    """The number of a label file (from its name), or None when ``rel`` is not one."""
    name = rel.rsplit("/", 1)[-1]
    m = re.fullmatch(_pattern(LAYOUT.label).replace(_TOKENS["number"], f"({_TOKENS['number']})"), name)
    return int(m.group(1)) if m else None


def image_names(count: int) -> list[str]:
    """File names of an output series of ``count`` files."""
    return [image_name(n) for n in range(1, count + 1)]


def _pattern(template: str, *, named: bool = False) -> str:
    """A regular expression matching what ``template`` formats to (placeholders as named groups with ``named``)."""
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name is not None:
            out.append(f"(?P<{name}>{_TOKENS[name]})" if named else _TOKENS[name])
    return "".join(out)


def output_path_pattern() -> re.Pattern[str]:
    """The output paths of the current layout, relative to the dataset."""
    return _output_path_pattern(LAYOUT)


@functools.lru_cache(maxsize=4)
def _output_path_pattern(lay: Layout) -> re.Pattern[str]:
    # Cached per layout: ``audit verify`` asks for every string of the log, and
    # building the expression from the templates costs more than matching it.
    name = f"(?:{_pattern(lay.image)}|{_pattern(lay.label)})"
    parts = (re.escape(lay.images), _pattern(lay.patient), _pattern(lay.study), _pattern(lay.series), name)
    return re.compile("/".join(parts))


def is_output_path(rel: str) -> bool:
    """Whether ``rel`` (POSIX, relative to the dataset) is an output path of this layout."""
    return output_path_pattern().fullmatch(rel) is not None


def is_image_path(rel: str) -> bool:
    """Whether ``rel`` lies in the images folder (a file there must be an output)."""
    return rel.startswith(LAYOUT.images + "/")


def series_folder_of(rel: str) -> str:
    """The series folder (relative) of an output path."""
    return rel.rsplit("/", 1)[0]


def log_path(outdir: Path) -> Path:
    """The audit log."""
    return outdir / LAYOUT.log


def signature_path(outdir: Path) -> Path:
    """The signature of the log's head."""
    return outdir / LAYOUT.signature


def manifest_path(outdir: Path) -> Path:
    """The manifest."""
    return outdir / LAYOUT.manifest


def record_files() -> tuple[str, ...]:
    """The dataset's own files besides its outputs (log, signature, manifest), relative."""
    return (LAYOUT.log, LAYOUT.signature, LAYOUT.manifest)


def work_dir(outdir: Path) -> Path:
    """A run's scratch folder (absent from a finished dataset)."""
    return outdir / LAYOUT.work


def run_state_path(outdir: Path) -> Path:
    """The identity of the run that holds ``outdir`` (for ``--resume``)."""
    return outdir / LAYOUT.run_state


def fragment_path(outdir: Path, index: int) -> Path:
    """Where the records of finished series ``index`` wait until the log is assembled."""
    return outdir / LAYOUT.fragments / f"{index:06d}.json"


def is_dataset_file(rel: str) -> bool:
    """Whether ``rel`` is a file the dataset defines (an output or one of :func:`record_files`)."""
    return rel in record_files() or is_output_path(rel)


__all__ = [
    "DATASET_FORMAT",
    "LAYOUT",
    "Layout",
    "SeriesFolder",
    "fragment_path",
    "image_name",
    "image_names",
    "is_dataset_file",
    "is_image_path",
    "is_output_path",
    "log_path",
    "manifest_path",
    "output_path_pattern",
    "record_files",
    "run_state_path",
    "series_folder_of",
    "signature_path",
    "token",
    "work_dir",
]
