"""medaug: privacy-aware augmentation of DICOM archives.

The pipeline's stages are subpackages named for what they do:
:mod:`medaug.ingest` (read archives, assemble series), :mod:`medaug.deid`
(identifiers out), :mod:`medaug.augment` (plausible transforms),
:mod:`medaug.write` (derived DICOM out) and :mod:`medaug.audit` (provenance),
with :mod:`medaug.policy` beside them and :mod:`medaug.cli` on top.
"""

__version__ = "0.1.0"
