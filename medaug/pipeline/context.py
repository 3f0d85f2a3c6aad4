"""What every series task of one run needs to know, in one picklable object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.deid.pseudonyms import pseudonymizer
from medaug.policy.model import Policy
from medaug.write.template import WriterKind


@dataclass(frozen=True)
class RunContext:
    """The settings of one run, shared by all its series tasks.

    Parameters
    ----------
    policy : Policy
        The approved policy.
    key : Key
        The secret key of the keyed pseudonyms (never written anywhere).
    archive : Path
        Root folder of the source archive.
    outdir : Path
        Root folder of the output dataset.
    writer : {"template", "dcmwrite"}
        How output files are encoded: the template writer (shared header
        elements encoded once per series) or pydicom's ``dcmwrite``, the
        reference it is byte-identical to (:mod:`medaug.write.template`).
    """

    policy: Policy
    key: Key
    archive: Path
    outdir: Path
    writer: WriterKind = "template"

    @property
    def deid_options(self) -> DeidOptions:
        """The policy's de-identification options."""
        return self.policy.deid

    def source_pseudonym(self, path: Path) -> str:
        """Keyed pseudonym of a source file (:meth:`~medaug.deid.pseudonyms.Pseudonymizer.source_file`
        of its path relative to the archive)."""
        try:
            rel = path.relative_to(self.archive)
        except ValueError:
            rel = path
        return pseudonymizer(self.key).source_file(rel.as_posix())
