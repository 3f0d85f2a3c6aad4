"""The exception family of medaug.

Every message names a *place* (a key path, a tag number, a file number) and what
is wrong with it, never the offending value: values in a DICOM archive can be a
patient's name.
"""

from __future__ import annotations


class MedaugError(Exception):
    """Base class of all errors medaug raises on purpose."""

    default_message = "medaug failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class UsageError(MedaugError):
    """A command was called wrongly (missing key, bad path, bad option)."""

    default_message = "invalid usage"


class PolicyError(MedaugError):
    """A policy is invalid, over a clinical cap, unapproved or altered."""

    default_message = "the policy is invalid"


class InputError(MedaugError):
    """An input file or series cannot be used.

    Parameters
    ----------
    reason : str
        A reason code from :mod:`medaug.ingest.reasons`.
    message : str, optional
        A detail that names tags or sizes, never values.
    """

    default_message = "the input cannot be used"

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}" if message else reason)


class DeidentificationError(MedaugError):
    """An object cannot be de-identified safely (it is quarantined instead)."""

    default_message = "the object cannot be de-identified safely"

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}" if message else reason)


class TransformError(MedaugError):
    """A transform specification or parameter set is invalid."""

    default_message = "invalid transform parameters"


class WriteError(MedaugError):
    """A derived DICOM object cannot be written."""

    default_message = "the output cannot be written"
