"""Intensity changes in modality units.

A value ``v`` becomes ``v · (1 + scale) · (1 + bias(x)) + shift`` where
``shift`` is in modality units (HU for CT), ``scale`` a relative gain (MR and
other modalities without an absolute scale) and ``bias`` a smooth polynomial
of order ``bias_order`` in the normalised position ``x ∈ [-1, 1]³`` along the
volume's slice, row and column directions (no slice term for a 2D image).
Every monomial is bounded by 1 on that cube and the coefficients are drawn
within ``max_bias / number_of_terms``, so ``|bias| ≤ max_bias`` everywhere.
Voxels filled from outside the field keep the fill value (CT air outside the
field reads −1000 HU, not −1000 + shift); every result is clipped into the
series' storable modality range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medaug.augment.spec import IntensitySpec
from medaug.errors import TransformError
from medaug.geometry import Geometry

_DECIMALS = 6


@dataclass(frozen=True)
class IntensityParams:
    """Realised intensity change.

    Parameters
    ----------
    shift : float
        Additive shift in modality units.
    scale : float
        Relative gain (0.03 = +3 %).
    bias_terms : tuple of (int, int, int)
        Exponents ``(a, b, c)`` of each bias monomial ``x_k^a x_j^b x_i^c``.
    bias_coefficients : tuple of float
        One coefficient per term.
    """

    shift: float = 0.0
    scale: float = 0.0
    bias_terms: tuple[tuple[int, int, int], ...] = ()
    bias_coefficients: tuple[float, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "shift": self.shift,
            "scale": self.scale,
            "bias_terms": [list(t) for t in self.bias_terms],
            "bias_coefficients": list(self.bias_coefficients),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, path: str = "intensity") -> "IntensityParams":
        """Rebuild from :meth:`to_json` output.

        Raises
        ------
        TransformError
            Naming the key path of a malformed entry.
        """
        if set(data) - {"shift", "scale", "bias_terms", "bias_coefficients"}:
            raise TransformError(f"{path} has an unknown key")
        nums = []
        for key in ("shift", "scale"):
            value = data.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TransformError(f"{path}.{key} must be a finite number")
            nums.append(float(value))
        try:
            terms = tuple((int(a), int(b), int(c)) for a, b, c in data.get("bias_terms", []))
            coefs = tuple(float(c) for c in data.get("bias_coefficients", []))
        except (TypeError, ValueError):
            raise TransformError(f"{path}.bias_terms or {path}.bias_coefficients is malformed") from None
        if len(terms) != len(coefs) or any(min(t) < 0 for t in terms) or not all(map(math.isfinite, coefs)):
            raise TransformError(f"{path}.bias_terms and {path}.bias_coefficients do not match")
        return cls(nums[0], nums[1], terms, coefs)

    @property
    def is_identity(self) -> bool:
        """True when values pass unchanged."""
        return self.shift == 0.0 and self.scale == 0.0 and not any(self.bias_coefficients)

    @property
    def max_bias(self) -> float:
        """Upper bound of ``|bias(x)|`` over the volume."""
        return float(sum(abs(c) for c in self.bias_coefficients))


def validate_spec(spec: IntensitySpec, *, path: str = "transforms.intensity") -> None:
    """Refuse negative or malformed bounds, naming the key."""
    for key in ("max_shift", "max_scale", "max_bias"):
        value = getattr(spec, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise TransformError(f"{path}.{key} must be a non-negative number")
    if spec.max_scale >= 1 or spec.max_bias >= 1:
        raise TransformError(f"{path}.max_scale and {path}.max_bias must be below 1")
    if isinstance(spec.bias_order, bool) or not isinstance(spec.bias_order, int) or not 0 <= spec.bias_order <= 4:
        raise TransformError(f"{path}.bias_order must be an integer from 0 to 4")


def violations(params: IntensityParams, spec: IntensitySpec | None, *, eps: float = 1e-9) -> list[str]:
    """Every way a realised intensity change leaves the spec's bounds (messages name parameter and bound).

    Examples
    --------
    >>> violations(IntensityParams(shift=6.0), IntensitySpec(max_shift=5))
    ['params.intensity.shift exceeds intensity.max_shift (5)']
    """
    if spec is None:
        return [] if params.is_identity else ["params.intensity is applied but the policy allows no intensity change"]
    out = []
    if abs(params.shift) > spec.max_shift + eps:
        out.append(f"params.intensity.shift exceeds intensity.max_shift ({spec.max_shift:g})")
    if abs(params.scale) > spec.max_scale + eps:
        out.append(f"params.intensity.scale exceeds intensity.max_scale ({spec.max_scale:g})")
    if params.max_bias > spec.max_bias + eps:
        out.append(f"params.intensity.bias_coefficients exceed intensity.max_bias ({spec.max_bias:g})")
    if any(sum(t) > spec.bias_order for t in params.bias_terms):
        out.append(f"params.intensity.bias_terms exceed intensity.bias_order ({spec.bias_order})")
    return out


def bias_terms(order: int, *, two_d: bool) -> tuple[tuple[int, int, int], ...]:
    """Monomial exponents of total degree 1…``order`` (no slice term in 2D), in a fixed order."""
    terms = []
    for total in range(1, order + 1):
        for a in range(total + 1):
            for b in range(total - a + 1):
                c = total - a - b
                if two_d and a:
                    continue
                terms.append((a, b, c))
    return tuple(terms)


def _draw(rng: np.random.Generator, bound: float) -> float:
    value = round(float(rng.uniform(-bound, bound)), _DECIMALS)
    return float(min(max(value, -bound), bound)) + 0.0


def sample(rng: np.random.Generator, spec: IntensitySpec, geometry: Geometry) -> IntensityParams:
    """Draw a shift, a scale and bias coefficients within the spec's bounds.

    Examples
    --------
    >>> from medaug.geometry import Geometry
    >>> p = sample(np.random.default_rng(1), IntensitySpec(max_shift=5), Geometry.axial((4, 8, 8)))
    >>> abs(p.shift) <= 5 and p.scale == 0.0
    True
    """
    validate_spec(spec)
    shift = _draw(rng, float(spec.max_shift))
    scale = _draw(rng, float(spec.max_scale))
    terms: tuple[tuple[int, int, int], ...] = ()
    coefs: tuple[float, ...] = ()
    if spec.max_bias > 0 and spec.bias_order > 0:
        terms = bias_terms(spec.bias_order, two_d=geometry.shape[0] == 1)
        each = float(spec.max_bias) / len(terms)
        coefs = tuple(_draw(rng, each) for _ in terms)
    return IntensityParams(shift, scale, terms, coefs)


def apply(
    data: NDArray[np.generic],
    geometry: Geometry,
    params: IntensityParams,
    *,
    value_range: tuple[float, float] | None = None,
) -> NDArray[np.float32]:
    """Change the values of a monochrome volume (no resampling), clipped into ``value_range``."""
    from medaug.augment.resample import build_mapping, resample

    if data.ndim != 3:
        raise TransformError("intensity applies to monochrome volumes only")
    out, _, _ = resample(
        data,
        geometry,
        build_mapping(geometry),
        fill=0.0,
        value_range=value_range,
        **kernel_terms(params),
    )
    return out


def kernel_terms(params: IntensityParams) -> dict[str, Any]:
    """Keyword arguments of :func:`medaug.augment.resample.resample` for these params."""
    return {
        "intensity": not params.is_identity,
        "gain": 1.0 + params.scale,
        "shift": params.shift,
        "bias_coefficients": np.asarray(params.bias_coefficients, dtype=np.float64),
        "bias_exponents": np.asarray(params.bias_terms, dtype=np.int64).reshape(-1, 3),
    }
