"""The dataset contract: what a medaug dataset holds and where (one owner for writer and readers).

:mod:`~medaug.dataset.layout` names every folder and file as a function of
pseudonyms; :mod:`~medaug.dataset.records` defines every audit record kind and
the manifest as typed builders. The run writes through them, the audit tools
read through them.
"""
