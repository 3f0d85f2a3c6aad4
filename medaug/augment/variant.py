"""A variant: every transform of one output, sampled together, applied in one pass.

Examples
--------
>>> import numpy as np
>>> from medaug.augment.spec import AugmentSpec, RotationSpec, IntensitySpec
>>> from medaug.geometry import Geometry
>>> g = Geometry.axial((8, 32, 32), spacing=(2.5, 0.8, 0.8))
>>> spec = AugmentSpec(rotation=RotationSpec(5.0), intensity=IntensitySpec(max_shift=5))
>>> params = sample_variant(variant_rng(7, "PSEUDO-1", 0), spec, g, modality="CT")
>>> volume = np.full(g.shape, -1000.0, dtype=np.float32)
>>> result = apply_variant(volume, g, params, modality="CT", value_range=(-1024.0, 3071.0))
>>> result.data.shape == g.shape and result.min_jacobian == 1.0
True
>>> VariantParams.from_json(params.to_json()) == params
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medaug.augment import elastic, intensity, rotation
from medaug.augment.elastic import ElasticParams
from medaug.augment.intensity import IntensityParams
from medaug.augment.bspline import free_mask, resolves
from medaug.augment.resample import Mapping, build_mapping, resample, resample_nearest
from medaug.augment.rotation import RotationParams
from medaug.augment.spec import AugmentSpec
from medaug.errors import TransformError
from medaug.geometry import Geometry

#: Background of CT outside the field of view (air), in HU.
CT_BACKGROUND = -1000.0


@dataclass(frozen=True)
class VariantParams:
    """Everything needed to reproduce one variant, in physical units.

    Parameters
    ----------
    rotation, elastic, intensity : params or None
        Realised parameters of each transform; None when not applied.
    interpolation : {'linear', 'cubic'}
        Interpolation order of the single resampling pass.
    """

    rotation: RotationParams | None = None
    elastic: ElasticParams | None = None
    intensity: IntensityParams | None = None
    interpolation: str = "linear"

    @property
    def is_spatial(self) -> bool:
        """True when voxels move (the output needs a new Frame of Reference)."""
        return (self.rotation is not None and not self.rotation.is_identity) or (
            self.elastic is not None and not self.elastic.is_identity
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what the audit log records)."""
        return {
            "interpolation": self.interpolation,
            "rotation": None if self.rotation is None else self.rotation.to_json(),
            "elastic": None if self.elastic is None else self.elastic.to_json(),
            "intensity": None if self.intensity is None else self.intensity.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, path: str = "params") -> "VariantParams":
        """Rebuild from :meth:`to_json` output (a replay reproduces the output bit for bit).

        Raises
        ------
        TransformError
            Naming the key path of a malformed entry.
        """
        if not isinstance(data, dict) or set(data) - {"interpolation", "rotation", "elastic", "intensity"}:
            raise TransformError(f"{path} must be a mapping of known transforms")
        interp = data.get("interpolation", "linear")
        if interp not in ("linear", "cubic"):
            raise TransformError(f"{path}.interpolation must be 'linear' or 'cubic'")
        parts: dict[str, Any] = {}
        for key, kind in (("rotation", RotationParams), ("elastic", ElasticParams), ("intensity", IntensityParams)):
            value = data.get(key)
            if value is None:
                parts[key] = None
            elif isinstance(value, dict):
                parts[key] = kind.from_json(value, path=f"{path}.{key}")
            else:
                raise TransformError(f"{path}.{key} must be a mapping or null")
        return cls(interpolation=interp, **parts)


@dataclass(frozen=True)
class VariantResult:
    """The output of :func:`apply_variant`.

    Attributes
    ----------
    data : ndarray
        Same shape and grid as the input; ``out_dtype`` (float32 for monochrome input, the
        input dtype for colour input by default).
    min_jacobian, max_jacobian : float
        Extremes of the mapping's Jacobian determinant over every output
        voxel (1.0 without elastic deformation); always > 0 when returned.
    fill : float
        Value given to voxels whose source lies outside the volume.
    geometry : Geometry
        The output's grid: always the input's (transforms never regrid).
    """

    data: NDArray[Any]
    min_jacobian: float
    max_jacobian: float
    fill: float
    geometry: Geometry


def variant_rng(run_seed: int, series_key: str | bytes, variant_index: int) -> np.random.Generator:
    """The generator of one variant, independent of worker count and order.

    ``SeedSequence(run_seed, spawn_key=(*words, variant_index))`` where
    ``words`` are the eight 32-bit words of SHA-256(series_key); pass the
    series *pseudonym*, never a source identifier.

    Examples
    --------
    >>> a = variant_rng(1, "S1", 0).uniform(); b = variant_rng(1, "S1", 0).uniform()
    >>> a == b != variant_rng(1, "S1", 1).uniform()
    True
    """
    if isinstance(run_seed, bool) or not isinstance(run_seed, int) or run_seed < 0:
        raise TransformError("seed must be a non-negative integer")
    if isinstance(variant_index, bool) or not isinstance(variant_index, int) or variant_index < 0:
        raise TransformError("variant index must be a non-negative integer")
    key = series_key.encode("utf-8") if isinstance(series_key, str) else bytes(series_key)
    digest = hashlib.sha256(key).digest()
    words = tuple(int.from_bytes(digest[n : n + 4], "big") for n in range(0, 32, 4))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(run_seed, spawn_key=(*words, variant_index))))


def validate_spec(spec: AugmentSpec, *, path: str = "transforms") -> None:
    """Check every bound of ``spec`` (fold-free elastic bound included), naming the key path."""
    if spec.rotation is not None:
        rotation.validate_spec(spec.rotation, path=f"{path}.rotation")
    if spec.elastic is not None:
        elastic.validate_spec(spec.elastic, path=f"{path}.elastic")
    if spec.intensity is not None:
        intensity.validate_spec(spec.intensity, path=f"{path}.intensity")
    if spec.interpolation not in ("linear", "cubic"):
        raise TransformError(f"{path}.interpolation must be 'linear' or 'cubic'")


def sample_variant(
    rng: np.random.Generator, spec: AugmentSpec, geometry: Geometry, *, modality: str
) -> VariantParams:
    """Sample every transform the spec allows, in a fixed order (rotation, elastic, intensity).

    ``modality`` is accepted so callers state it; the per-modality caps are
    the policy's job, and colour images get no intensity change at apply time.
    """
    validate_spec(spec)
    del modality  # bounds come from the (already capped) spec
    warp = spec.elastic if elastic_acts(spec, geometry) else None
    return VariantParams(
        rotation=None if spec.rotation is None else rotation.sample(rng, spec.rotation, geometry),
        elastic=None if warp is None else elastic.sample(rng, warp, geometry),
        intensity=None if spec.intensity is None else intensity.sample(rng, spec.intensity, geometry),
        interpolation=spec.interpolation,
    )


def elastic_acts(spec: AugmentSpec, geometry: Geometry) -> bool:
    """Whether ``spec``'s elastic transform is drawn for this volume at all (see :func:`not_applied`)."""
    return spec.elastic is not None and resolves(geometry, spec.elastic.control_spacing_mm)


def variant_params(
    spec: AugmentSpec,
    *,
    seed: int,
    series_key: str,
    variant: int,
    geometry: Geometry,
    modality: str,
    regular: bool = True,
) -> VariantParams:
    """The parameters of variant ``variant`` of one series: the rule every run and preview follows.

    Drawn from :func:`variant_rng` ``(seed, series_key, variant)``, so they depend
    on the series (pass its *new*, keyed Series Instance UID) and the variant
    number only, never on worker count or order. Spatial transforms assume a
    regular grid: a stack with gaps or uneven steps (``regular=False``) keeps its
    geometry exactly and gets the intensity change only.

    Examples
    --------
    >>> from medaug.augment.spec import RotationSpec
    >>> g = Geometry.axial((4, 8, 8))
    >>> p = variant_params(AugmentSpec(rotation=RotationSpec(5.0)), seed=1, series_key="2.25.9", variant=1,
    ...                    geometry=g, modality="CT", regular=False)
    >>> p.is_spatial
    False
    """
    params = sample_variant(variant_rng(seed, series_key, variant), spec, geometry, modality=modality)
    if params.is_spatial and not regular:
        params = VariantParams(intensity=params.intensity, interpolation=params.interpolation)
    return params


#: Why a transform the spec allows did not act on a variant (codes recorded and summarised).
SPATIAL_SKIPPED_IRREGULAR = "spatial-not-applied-irregular-grid"
ELASTIC_LOCKED = "elastic-not-applied-short-extent"
ELASTIC_TOO_FINE = "elastic-not-applied-grid-finer-than-voxels"


def not_applied(spec: AugmentSpec, *, geometry: Geometry, regular: bool) -> list[str]:
    """Codes of the transforms ``spec`` allows that cannot act on this series, and why.

    A stack with gaps or uneven steps is never resampled (its geometry is kept
    exactly); an elastic grid whose control points all lie on the volume's border
    (a series not much longer than one control spacing along some axis) moves nothing,
    and a grid finer than :data:`~medaug.augment.bspline.MIN_CONTROL_SPACING_VOXELS`
    voxels is never drawn (nor its memory allocated).

    Examples
    --------
    >>> from medaug.augment.spec import ElasticSpec
    >>> not_applied(AugmentSpec(elastic=ElasticSpec(40.0, 4.0)), geometry=Geometry.axial((8, 64, 64)), regular=True)
    ['elastic-not-applied-short-extent']
    >>> not_applied(AugmentSpec(elastic=ElasticSpec(1.0, 0.2)), geometry=Geometry.axial((8, 64, 64)), regular=True)
    ['elastic-not-applied-grid-finer-than-voxels']
    """
    codes: list[str] = []
    if not regular and (spec.rotation is not None or spec.elastic is not None):
        codes.append(SPATIAL_SKIPPED_IRREGULAR)
    elif spec.elastic is not None and not resolves(geometry, spec.elastic.control_spacing_mm):
        codes.append(ELASTIC_TOO_FINE)
    elif spec.elastic is not None and not free_mask(geometry, spec.elastic.control_spacing_mm).any():
        codes.append(ELASTIC_LOCKED)
    return codes


def violations(params: VariantParams, spec: AugmentSpec) -> list[str]:
    """Every way a variant's realised parameters leave ``spec``'s bounds; empty when inside.

    Each transform judges its own parameters (``rotation.violations``,
    ``elastic.violations``, ``intensity.violations``); used by the run before it
    writes a variant and by ``audit verify`` on every recorded one.

    Examples
    --------
    >>> from medaug.augment.spec import RotationSpec
    >>> spec = AugmentSpec(rotation=RotationSpec(5.0, 2.0))
    >>> violations(VariantParams(rotation=RotationParams(4.0, 1.0, -2.0)), spec)
    []
    >>> violations(VariantParams(rotation=RotationParams(6.0)), spec)
    ['params.rotation.degrees exceeds rotation.max_degrees (5)']
    """
    out: list[str] = []
    if params.interpolation != spec.interpolation:
        out.append("params.interpolation is not the policy's interpolation")
    if params.rotation is not None:
        out += rotation.violations(params.rotation, spec.rotation)
    if params.elastic is not None:
        out += elastic.violations(params.elastic, spec.elastic)
    if params.intensity is not None:
        out += intensity.violations(params.intensity, spec.intensity)
    return out


def mapping_for(geometry: Geometry, params: VariantParams) -> Mapping:
    """The single coordinate mapping of a variant's spatial transforms."""
    rot = None
    if params.rotation is not None and not params.rotation.is_identity:
        rot = rotation.matrix(params.rotation, geometry)
    disp = spacing = None
    if params.elastic is not None:
        elastic.check(params.elastic, geometry)
        if not params.elastic.is_identity:
            disp, spacing = params.elastic.array(), params.elastic.control_spacing_mm
    return build_mapping(geometry, rotation=rot, displacement_mm=disp, control_spacing_mm=spacing)


def background(data: NDArray[np.generic], *, modality: str) -> float:
    """Fill value outside the field: the image's own background as it is displayed.

    CT: air, −1000 HU. Otherwise the median of the image's outermost ring of pixels
    (every slice's border), the value its edges show, whatever the photometric
    interpretation: a MONOCHROME1 radiograph, whose stored minimum displays white,
    is filled with the dark of its own border, not with white wedges. Colour
    images: the median of each sample's border, reduced to one value per image
    (their mean), which the resampler applies to every sample.

    Examples
    --------
    >>> img = np.full((1, 6, 6), 4000.0); img[0, 2:4, 2:4] = 100.0   # bright border, dark centre
    >>> background(img, modality="CR")
    4000.0
    """
    if modality.upper() == "CT":
        return CT_BACKGROUND
    if not data.size:
        return 0.0
    arr = np.asarray(data)
    ring = np.concatenate([
        arr[:, 0, ...].reshape(-1), arr[:, -1, ...].reshape(-1), arr[:, :, 0, ...].reshape(-1), arr[:, :, -1, ...].reshape(-1),
    ]) if arr.ndim >= 3 else arr.reshape(-1)
    return float(np.median(ring))


def apply_variant(
    data: NDArray[np.generic],
    geometry: Geometry,
    params: VariantParams,
    *,
    modality: str,
    fill: float | None = None,
    value_range: tuple[float, float] | None = None,
    out_dtype: "np.dtype[Any] | type | None" = None,
    out: NDArray[Any] | None = None,
) -> VariantResult:
    """Apply a variant in one resampling pass, on the source grid.

    Parameters
    ----------
    data : ndarray
        ``(k, j, i)`` values in modality units (any real dtype; not copied), or
        ``(k, j, i, c)`` colour samples (spatial transforms only, per channel).
    geometry : Geometry
        The grid of ``data`` and of the output.
    params : VariantParams
        From :func:`sample_variant` or :meth:`VariantParams.from_json`.
    modality : str
        Modality attribute; decides the default fill.
    fill : float, optional
        Override of the background (−1000 HU for CT, the border's median otherwise: :func:`background`).
    value_range : tuple of float, optional
        The series' storable modality range (``SeriesImage.modality_range``);
        every output value is clipped into it.
    out_dtype : dtype, optional
        Type of the output: float32 for monochrome data and the input's type
        for integer colour data by default. An integer type (e.g. int16 for a
        CT held as stored values) is rounded half up and clipped into its range
        by the kernel itself, so peak memory is that of the output only.
    out : ndarray, optional
        An array to write the output into (see :func:`~medaug.augment.resample.resample`):
        the previous variant's pixels, once written, for the next variant of a series.

    Returns
    -------
    VariantResult

    Raises
    ------
    TransformError
        Parameters that do not fit the geometry or could fold, or a measured
        Jacobian determinant that is not positive.
    """
    if params.interpolation not in ("linear", "cubic"):
        raise TransformError("params.interpolation must be 'linear' or 'cubic'")
    mapping = mapping_for(geometry, params)
    colour = data.ndim == 4
    fill_value = background(data, modality=modality) if fill is None else float(fill)
    terms: dict[str, Any] = {}
    if params.intensity is not None and not colour:
        terms = intensity.kernel_terms(params.intensity)
    if out_dtype is None and colour and np.issubdtype(data.dtype, np.integer):
        out_dtype = data.dtype  # colour samples are stored values: keep their type
    warped, jmin, jmax = resample(
        data,
        geometry,
        mapping,
        order=params.interpolation,
        fill=fill_value,
        value_range=value_range,
        out_dtype=out_dtype,
        out=out,
        **terms,
    )
    if not jmin > 0.0:
        raise TransformError("elastic: the realised deformation folds (minimum Jacobian determinant not > 0)")
    result: NDArray[Any] = warped
    return VariantResult(data=result, min_jacobian=jmin, max_jacobian=jmax, fill=fill_value, geometry=geometry)


def warp_labels(labels: NDArray[Any], geometry: Geometry, params: VariantParams) -> NDArray[Any]:
    """Warp a label map aligned with the image by the variant's mapping (nearest neighbour).

    The output keeps the dtype and only contains values of ``labels`` (and 0
    where the source lies outside the volume).
    """
    return resample_nearest(labels, geometry, mapping_for(geometry, params), fill=0)
