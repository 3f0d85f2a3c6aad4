"""Training-ready export: a verified dataset's output series as NIfTI in nnU-Net v2, MONAI or plain layout.

The modules, in the order an export runs:

- :mod:`medaug.export.layouts` — where each layout puts volumes and its index files;
- :mod:`medaug.export.nifti` — one series as one NIfTI-1 volume, its label maps on the same grid (nibabel, extra ``nifti``);
- :mod:`medaug.export.labels` — a series' label objects as integer label maps (values, layers);
- :mod:`medaug.export.build` — :func:`~medaug.export.build.export_dataset`, the command's work;
- :mod:`medaug.export.manifest` — the export manifest, the one definition of an export folder;
- :mod:`medaug.export.verify` — ``medaug audit verify EXPORTDIR``.

Typical use::

    from medaug.export.build import export_dataset
    from medaug.export.layouts import make_layout
    from medaug.export.verify import verify_export

    export_dataset(Path("out"), Path("export"), make_layout("nnunet", dataset_id=7, name="chest"))
    assert verify_export(Path("export"), against=Path("out")).ok

Nothing is imported here, so the command line can read the layouts' names
without loading the reader or nibabel.
"""
