"""Write derived DICOM: a SeriesImage back to files in the source's own IOD, atomically."""

from medaug.write.series import SUPPORTED_TRANSFER_SYNTAXES, WriteResult, write_series

__all__ = ["SUPPORTED_TRANSFER_SYNTAXES", "WriteResult", "write_series"]
