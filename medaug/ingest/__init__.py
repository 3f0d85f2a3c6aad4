"""Read archives: discover DICOM files, group them into series, build volumes.

Typical use::

    scan = scan_archive(Path("archive"))
    for ref in scan.series:
        loaded = load_series(ref)   # LoadedSeries(image, quarantined)
"""

from medaug.ingest.archive import ArchiveScan, scan_archive
from medaug.ingest.grouping import Quarantined, SeriesRef
from medaug.ingest.volume import LoadedSeries, load_series

__all__ = ["ArchiveScan", "LoadedSeries", "Quarantined", "SeriesRef", "load_series", "scan_archive"]
