"""Read archives: discover DICOM files, group them into series, build volumes."""
