"""What every series task of one run needs to know, in one picklable object."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.policy.model import Policy


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
    """

    policy: Policy
    key: Key
    archive: Path
    outdir: Path

    @property
    def deid_options(self) -> DeidOptions:
        """The policy's de-identification options."""
        return self.policy.deid

    def source_pseudonym(self, path: Path) -> str:
        """Keyed pseudonym of a source file (its path relative to the archive).

        Lets ``audit trace`` find the source of an output with the key, while the
        log holds nothing that someone without the key can link to a file.
        """
        try:
            rel = path.relative_to(self.archive)
        except ValueError:
            rel = path
        digest = hmac.new(self.key.subkey("source-file"), rel.as_posix().encode("utf-8", "surrogateescape"), hashlib.sha256)
        return "F-" + digest.hexdigest()[:24]
