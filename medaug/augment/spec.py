"""What a policy allows each transform to do: bounds in physical units.

A spec is the *bounds*; a transform samples concrete parameters inside them
(see :mod:`medaug.augment`). Specs are built from the ``transforms`` mapping of
a policy file::

    transforms:
      interpolation: linear            # or cubic
      rotation:  {max_degrees: 5, max_tilt_degrees: 2}
      elastic:   {control_spacing_mm: 40, max_displacement_mm: 4}
      intensity: {max_shift: 5}                       # CT: HU
      intensity: {max_scale: 0.05, max_bias: 0.05, bias_order: 2}   # MR

Every key is optional; a missing transform is not applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medaug.errors import TransformError

Interpolation = Literal["linear", "cubic"]


@dataclass(frozen=True)
class RotationSpec:
    """Rotation bounds.

    Parameters
    ----------
    max_degrees : float
        Largest in-plane rotation (about the image normal, e.g. the
        superior–inferior axis of an axial CT), either sign.
    max_tilt_degrees : float
        Largest rotation about each in-plane axis (3D volumes only).
    """

    max_degrees: float
    max_tilt_degrees: float = 0.0


@dataclass(frozen=True)
class ElasticSpec:
    """B-spline free-form deformation bounds.

    Parameters
    ----------
    control_spacing_mm : float
        Spacing of the cubic B-spline control grid, in millimetres.
    max_displacement_mm : float
        Largest control-point displacement along each axis, in millimetres;
        must be below 0.4 × ``control_spacing_mm`` (fold-free).
    """

    control_spacing_mm: float
    max_displacement_mm: float


@dataclass(frozen=True)
class IntensitySpec:
    """Intensity bounds.

    Parameters
    ----------
    max_shift : float
        Largest additive shift, in modality units (HU for CT).
    max_scale : float
        Largest relative multiplicative change (0.05 = ±5 %).
    max_bias : float
        Largest relative amplitude of a smooth multiplicative bias field.
    bias_order : int
        Polynomial order of the bias field (0 disables it).
    """

    max_shift: float = 0.0
    max_scale: float = 0.0
    max_bias: float = 0.0
    bias_order: int = 2


@dataclass(frozen=True)
class AugmentSpec:
    """The transforms one policy allows, with their bounds."""

    rotation: RotationSpec | None = None
    elastic: ElasticSpec | None = None
    intensity: IntensitySpec | None = None
    interpolation: Interpolation = "linear"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, path: str = "transforms") -> "AugmentSpec":
        """Build from a policy's ``transforms`` mapping.

        Raises
        ------
        TransformError
            Naming the key path of an unknown key or a bad value.
        """
        known = {"rotation": RotationSpec, "elastic": ElasticSpec, "intensity": IntensitySpec}
        kwargs: dict[str, Any] = {}
        for key, value in mapping.items():
            if key == "interpolation":
                if value not in ("linear", "cubic"):
                    raise TransformError(f"{path}.interpolation must be 'linear' or 'cubic'")
                kwargs[key] = value
            elif key in known:
                if not isinstance(value, Mapping):
                    raise TransformError(f"{path}.{key} must be a mapping")
                try:
                    kwargs[key] = known[key](**dict(value))
                except TypeError:
                    raise TransformError(f"{path}.{key} has an unknown or missing key") from None
            else:
                raise TransformError(f"{path}.{key} is not a known transform")
        return cls(**kwargs)
