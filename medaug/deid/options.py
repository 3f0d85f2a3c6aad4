"""The options of the Basic Application Level Confidentiality Profile (PS3.15 E.3).

Options are selected by name (``DeidOptions.from_names(["retain_uids", ...])``);
each carries its CID 7050 code, recorded in DeidentificationMethodCodeSequence
of every object it was applied to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from medaug.errors import UsageError

#: CID 7050 code of the profile itself.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

#: CID 7050 code and meaning of each option, by option name.
OPTION_CODES: dict[str, tuple[str, str]] = {
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_recognizable_visual_features": ("113102", "Clean Recognizable Visual Features Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_long_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_long_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}

#: The options that have a column in Table E.1-1.
TABLE_OPTIONS = (
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_long_full_dates",
    "retain_long_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
)


#: What may happen to an image with detected burned-in text.
TEXT_ACTIONS = ("quarantine", "redact")


@dataclass(frozen=True)
class SafePrivate:
    """A private attribute that may be kept: its private creator and element byte.

    Parameters
    ----------
    creator : str
        The Private Creator value, e.g. ``"SIEMENS CSA HEADER"`` (compared after
        stripping spaces).
    element_byte : int
        The low byte of the element number (``0x00``–``0xFF``), the same in every
        block the creator reserves.
    """

    creator: str
    element_byte: int

    def __post_init__(self) -> None:
        if not 0 <= self.element_byte <= 0xFF:
            raise UsageError("safe_private.element_byte must lie in 0x00..0xFF")
        object.__setattr__(self, "creator", self.creator.strip())


@dataclass(frozen=True)
class BurnedInRule:
    """Regions to blank on images of one device and size.

    Parameters
    ----------
    manufacturer, model : str
        Manufacturer (0008,0070) and Manufacturer's Model Name (0008,1090),
        compared exactly after stripping spaces.
    rows, columns : int
        Image size the rule applies to.
    regions : tuple of (x, y, width, height)
        Rectangles in pixels (x = column, y = row of the top-left corner),
        blanked to 0 on every frame.
    """

    manufacturer: str
    model: str
    rows: int
    columns: int
    regions: tuple[tuple[int, int, int, int], ...]

    def __post_init__(self) -> None:
        if self.rows <= 0 or self.columns <= 0:
            raise UsageError("burned_in_rules: rows and columns must be positive")
        if not self.regions:
            raise UsageError("burned_in_rules: a rule needs at least one region")
        for x, y, w, h in self.regions:
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > self.columns or y + h > self.rows:
                raise UsageError("burned_in_rules: a region lies outside the image")


@dataclass(frozen=True)
class DeidOptions:
    """Which profile options apply; all off is the Basic Profile.

    Notes
    -----
    ``burned_in_rules`` are used only with ``clean_pixel_data``: blanking regions
    is how medaug cleans pixel data. The two longitudinal options exclude each
    other.
    """

    clean_pixel_data: bool = False
    clean_recognizable_visual_features: bool = False
    clean_graphics: bool = False
    clean_structured_content: bool = False
    clean_descriptors: bool = False
    retain_long_full_dates: bool = False
    retain_long_modified_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_uids: bool = False
    retain_safe_private: bool = False
    safe_private: tuple[SafePrivate, ...] = field(default=())
    burned_in_rules: tuple[BurnedInRule, ...] = field(default=())
    #: With Clean Descriptors: keep a description verbatim when its whole phrase is on the reviewed list.
    reviewed_phrases: bool = False
    #: What happens to an image where text is detected in the pixels: ``quarantine`` or ``redact``.
    burned_in_text: str = "quarantine"
    #: Pixels added around each detected text box before it is redacted.
    text_margin: int = 3

    def __post_init__(self) -> None:
        if self.retain_long_full_dates and self.retain_long_modified_dates:
            raise UsageError("retain_long_full_dates and retain_long_modified_dates exclude each other")
        if self.burned_in_rules and not self.clean_pixel_data:
            raise UsageError("burned_in_rules need the clean_pixel_data option")
        if self.safe_private and not self.retain_safe_private:
            raise UsageError("safe_private needs the retain_safe_private option")
        if self.burned_in_text not in TEXT_ACTIONS:
            raise UsageError("burned_in_text must be quarantine or redact")
        if self.reviewed_phrases and not self.clean_descriptors:
            raise UsageError("reviewed_phrases needs the clean_descriptors option")

    @classmethod
    def from_names(
        cls,
        names: Iterable[str],
        *,
        safe_private: Iterable[SafePrivate] = (),
        burned_in_rules: Iterable[BurnedInRule] = (),
        reviewed_phrases: bool = False,
        burned_in_text: str = "quarantine",
    ) -> DeidOptions:
        """Options selected by name.

        Parameters
        ----------
        names : iterable of str
            Option names (keys of :data:`OPTION_CODES`).
        safe_private, burned_in_rules : iterable, optional
            The safe list and the burned-in rules.

        Raises
        ------
        UsageError
            For an unknown name or an inconsistent combination.

        Examples
        --------
        >>> DeidOptions.from_names(["retain_uids"]).codes()[1][0]
        '113110'
        """
        chosen = {}
        for name in names:
            if name not in OPTION_CODES:
                raise UsageError(f"unknown de-identification option: {name!r}")
            chosen[name] = True
        return cls(**chosen, safe_private=tuple(safe_private), burned_in_rules=tuple(burned_in_rules),
                   reviewed_phrases=reviewed_phrases, burned_in_text=burned_in_text)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the selected options, in CID 7050 code order."""
        on = {f.name for f in fields(self) if f.name in OPTION_CODES and getattr(self, f.name)}
        return tuple(sorted(on, key=lambda n: OPTION_CODES[n][0]))

    def codes(self) -> list[tuple[str, str]]:
        """(code value, meaning) of the profile and every selected option, scheme DCM."""
        return [BASIC_PROFILE_CODE] + [OPTION_CODES[n] for n in self.names]
