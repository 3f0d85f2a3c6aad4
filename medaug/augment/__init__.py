"""Clinically plausible transforms: sample parameters in physical units, then apply them.

Each transform module (:mod:`~medaug.augment.rotation`,
:mod:`~medaug.augment.elastic`, :mod:`~medaug.augment.intensity`) has
``sample(rng, spec, geometry) -> Params`` and a pure ``apply``; a variant
(:mod:`~medaug.augment.variant`) composes them into one resampling pass.
"""

from medaug.augment.elastic import ElasticParams
from medaug.augment.intensity import IntensityParams
from medaug.augment.rotation import RotationParams
from medaug.augment.spec import AugmentSpec, ElasticSpec, IntensitySpec, RotationSpec
from medaug.augment.variant import (
    VariantParams,
    VariantResult,
    apply_variant,
    sample_variant,
    validate_spec,
    variant_params,
    variant_rng,
    violations,
    warp_labels,
)

__all__ = [
    "AugmentSpec",
    "ElasticParams",
    "ElasticSpec",
    "IntensityParams",
    "IntensitySpec",
    "RotationParams",
    "RotationSpec",
    "VariantParams",
    "VariantResult",
    "apply_variant",
    "sample_variant",
    "validate_spec",
    "variant_params",
    "variant_rng",
    "violations",
    "warp_labels",
]
