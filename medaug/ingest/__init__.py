"""Read archives: discover DICOM files, group them into series, build volumes.

Typical use::

    scan = scan_archive(Path("archive"))    # headers only; records kept on disk
    for ref in scan.iter_series():           # one volume at a time
        loaded = load_series(ref)            # LoadedSeries(image, quarantined)
    scan.quarantined                         # every unusable file, with its reason code
"""

from medaug.ingest.archive import ArchiveScan, scan_archive
from medaug.ingest.grouping import Quarantined, SeriesRef
from medaug.ingest.volume import LoadedSeries, load_series

__all__ = ["ArchiveScan", "LoadedSeries", "Quarantined", "SeriesRef", "load_series", "scan_archive"]
