"""Hard clinical caps: the most any policy may allow, per modality.

A policy's bounds are its approver's choice; these caps are not. They keep
every variant within what real acquisitions of the same anatomy vary by, so
an augmented image never shows something no scanner would. Each number is
explained, with its source, in ``docs/plausibility.md``; change one only
together with that page.

The caps of every modality a policy lists apply at once (the strictest wins).
A modality without caps here (ultrasound, nuclear medicine, mammography, ...)
may be de-identified but not augmented.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from medaug.augment.spec import AugmentSpec

#: Elastic: control-point displacement must stay *below* this fraction of the
#: control spacing, so the cubic B-spline map is fold-free (Rueckert et al. 2006).
ELASTIC_MAX_FRACTION_OF_SPACING = 0.4

#: Elastic: largest control-point displacement in millimetres, any modality.
ELASTIC_MAX_DISPLACEMENT_MM = 10.0

#: Highest polynomial order of a bias field: a smooth, low-order shading only.
MAX_BIAS_ORDER = 3


@dataclass(frozen=True)
class ModalityCaps:
    """The largest bounds a policy may set for one modality.

    Parameters
    ----------
    name : str
        How messages name the group, e.g. ``"CT"`` or ``"radiography (DX)"``.
    max_degrees : float
        Largest in-plane rotation, degrees.
    max_tilt_degrees : float
        Largest tilt about each in-plane axis, degrees (0 for 2D images).
    max_shift : float
        Largest additive intensity shift in modality units (0 where the
        modality has no absolute scale).
    max_scale : float
        Largest relative multiplicative intensity change.
    max_bias : float
        Largest relative bias-field amplitude.
    why_no_shift, why_no_scale : str
        Why a zero cap is zero, appended to the message.
    """

    name: str
    max_degrees: float
    max_tilt_degrees: float
    max_shift: float
    max_scale: float
    max_bias: float
    why_no_shift: str = ""
    why_no_scale: str = ""


_CT = ModalityCaps(
    name="CT",
    max_degrees=15.0,
    max_tilt_degrees=10.0,
    max_shift=7.0,
    max_scale=0.0,
    max_bias=0.0,
    why_no_scale="CT numbers are calibrated (water 0 HU, air -1000 HU); use max_shift",
)
_MR = ModalityCaps(
    name="MR",
    max_degrees=15.0,
    max_tilt_degrees=10.0,
    max_shift=0.0,
    max_scale=0.10,
    max_bias=0.10,
    why_no_shift="MR has no absolute intensity scale; use max_scale",
)


def _radiography(code: str) -> ModalityCaps:
    return ModalityCaps(
        name=f"radiography ({code})",
        max_degrees=10.0,
        max_tilt_degrees=0.0,
        max_shift=0.0,
        max_scale=0.10,
        max_bias=0.10,
        why_no_shift="projection radiographs have no absolute intensity scale; use max_scale",
    )


#: Caps by DICOM Modality code. A code not here has no caps: no transforms.
CAPS: dict[str, ModalityCaps] = {
    "CT": _CT,
    "MR": _MR,
    "CR": _radiography("CR"),
    "DX": _radiography("DX"),
}


def _fmt(value: float) -> str:
    """A number exactly but compactly: ``40``, ``0.11``, ``15.0000001``, ``1e+300``.

    Shortest round-trip form, so a value just over a cap never prints as the cap.
    """
    number = float(value)
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def cap_violations(spec: AugmentSpec, modalities: Iterable[str], *, path: str = "transforms") -> list[str]:
    """Every way ``spec`` exceeds the hard caps of ``modalities``.

    Parameters
    ----------
    spec : AugmentSpec
        The policy's transform bounds.
    modalities : iterable of str
        DICOM Modality codes the policy applies to; the caps of each apply.
    path : str
        Key path of the transforms mapping, for messages.

    Returns
    -------
    list of str
        One message per violation, naming the key, its value and the cap,
        e.g. ``"transforms.rotation.max_degrees = 40 exceeds the CT cap of 15"``;
        empty when the spec is within every cap.

    Examples
    --------
    >>> from medaug.augment.spec import RotationSpec
    >>> cap_violations(AugmentSpec(rotation=RotationSpec(max_degrees=40)), ["CT"])
    ['transforms.rotation.max_degrees = 40 exceeds the CT cap of 15']
    """
    codes = list(dict.fromkeys(modalities))
    found: list[str] = []
    has_transform = spec.rotation is not None or spec.elastic is not None or spec.intensity is not None
    uncapped = [code for code in codes if code not in CAPS]
    if has_transform and uncapped:
        found.append(
            f"{path}: modality {', '.join(uncapped)} has no clinical caps, so no transform may be "
            "applied to it (de-identify only); list it in a separate policy without transforms"
        )

    def over(key: str, value: float, cap: float, caps: ModalityCaps, why: str = "") -> None:
        if value > cap:
            reason = f" ({why})" if why and cap == 0 else ""
            found.append(f"{path}.{key} = {_fmt(value)} exceeds the {caps.name} cap of {_fmt(cap)}{reason}")

    for code in codes:
        caps = CAPS.get(code)
        if caps is None:
            continue
        if spec.rotation is not None:
            over("rotation.max_degrees", spec.rotation.max_degrees, caps.max_degrees, caps)
            over(
                "rotation.max_tilt_degrees",
                spec.rotation.max_tilt_degrees,
                caps.max_tilt_degrees,
                caps,
                "2D images rotate in plane only",
            )
        if spec.intensity is not None:
            over("intensity.max_shift", spec.intensity.max_shift, caps.max_shift, caps, caps.why_no_shift)
            over("intensity.max_scale", spec.intensity.max_scale, caps.max_scale, caps, caps.why_no_scale)
            over("intensity.max_bias", spec.intensity.max_bias, caps.max_bias, caps, caps.why_no_scale)

    if spec.intensity is not None and spec.intensity.max_bias > 0 and spec.intensity.bias_order > MAX_BIAS_ORDER:
        found.append(
            f"{path}.intensity.bias_order = {spec.intensity.bias_order} exceeds the cap of "
            f"{MAX_BIAS_ORDER} (a bias field is a smooth, low-order shading)"
        )
    if spec.elastic is not None:
        spacing = spec.elastic.control_spacing_mm
        shift = spec.elastic.max_displacement_mm
        if shift >= ELASTIC_MAX_FRACTION_OF_SPACING * spacing:
            found.append(
                f"{path}.elastic.max_displacement_mm = {_fmt(shift)} is not below the fold-free cap of "
                f"{ELASTIC_MAX_FRACTION_OF_SPACING} x control_spacing_mm = "
                f"{_fmt(ELASTIC_MAX_FRACTION_OF_SPACING * spacing)} (Rueckert et al. 2006)"
            )
        if shift > ELASTIC_MAX_DISPLACEMENT_MM:
            found.append(
                f"{path}.elastic.max_displacement_mm = {_fmt(shift)} exceeds the cap of "
                f"{_fmt(ELASTIC_MAX_DISPLACEMENT_MM)} mm"
            )
    return found
