"""Benchmark: what carrying labels costs beside the image warp of the same variant.

Run ``python -m benchmarks.bench_labels``. For each volume, one variant (5° rotation plus
an elastic deformation on a 7-point in-plane grid, as :mod:`benchmarks.bench_transforms`)
is applied to a CT-like image (linear, int16 out) and to label maps of ``--segments``
segments on the same grid, three ways: binary nearest neighbour (medaug's default), binary
one-hot linear then arg-max (the smoother policy option), and fractional linear clipped to
[0, 1]. Every timed call is the best of ``--repeats``, after a warm-up on a small volume
(numba loads or compiles its kernels; reported apart). The table gives each label warp's
time and its ratio to the image warp: the price of a labelled series over an unlabelled one,
before writing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_transforms import DEGREES, MAX_DISPLACEMENT_MM, _control_spacing_mm, _volume

#: name -> (shape (k, j, i), voxel spacing mm)
VOLUMES: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "256x256x128": ((128, 256, 256), (1.0, 1.0, 1.0)),
    "512x512x256-CT": ((256, 512, 512), (1.0, 0.7, 0.7)),
}
WARMUP_SHAPE = (16, 32, 32)
MODES = ("nearest", "onehot-linear", "fractional")


def _case(shape: tuple[int, int, int], spacing: tuple[float, float, float], segments: int) -> dict[str, Callable[[], Any]]:
    """The image warp and each label warp of one variant, as calls to time."""
    from medaug.augment import elastic
    from medaug.augment.labels import warp_label_volume
    from medaug.augment.rotation import RotationParams
    from medaug.augment.spec import ElasticSpec
    from medaug.augment.variant import VariantParams, apply_variant
    from medaug.geometry import Geometry
    from medaug.ingest.labels import LabelVolume, Segment

    geometry = Geometry.axial(shape, spacing=spacing)
    control = _control_spacing_mm(shape, spacing)
    params = VariantParams(
        rotation=RotationParams(DEGREES),
        elastic=elastic.sample(np.random.default_rng(0), ElasticSpec(control, min(MAX_DISPLACEMENT_MM, 0.39 * control)),
                               geometry),
    )
    image = _volume(shape, "int16")
    # Segments: nested boxes about the centre, each a band of the volume (overlapping, as organs' labels may).
    binary = np.zeros((segments,) + shape, dtype=np.uint8)
    for s in range(segments):
        lo = [n * (s + 1) // (2 * segments + 2) for n in shape]
        binary[(s,) + tuple(slice(a, n - a) for a, n in zip(lo, shape))] = 1
    plain = tuple(Segment(s + 1, "", "", "MANUAL") for s in range(segments))
    soft = tuple(Segment(s + 1, "", "", "MANUAL", fractional=True) for s in range(segments))
    labels = LabelVolume(binary, plain)
    fractions = LabelVolume(binary.astype(np.float32) * np.float32(0.8), soft)
    return {
        "image": lambda: apply_variant(image, geometry, params, modality="CT", out_dtype=np.int16),
        "nearest": lambda: warp_label_volume(labels, geometry, params),
        "onehot-linear": lambda: warp_label_volume(labels, geometry, params, mode="onehot-linear"),
        "fractional": lambda: warp_label_volume(fractions, geometry, params),
    }


def _best(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(name: str, shape: tuple[int, int, int], spacing: tuple[float, float, float], *, segments: int,
            repeats: int) -> dict[str, Any]:
    """Time the image warp and every label warp of one volume (after a warm-up)."""
    t0 = time.perf_counter()
    for call in _case(WARMUP_SHAPE, spacing, segments).values():
        call()
    warmup = time.perf_counter() - t0
    calls = _case(shape, spacing, segments)
    seconds = {what: _best(call, repeats) for what, call in calls.items()}
    return {"volume": name, "shape": list(shape), "segments": segments, "seconds": seconds,
            "relative": {m: seconds[m] / seconds["image"] for m in MODES}, "warmup_s": warmup}


def _table(results: list[dict[str, Any]]) -> str:
    lines = ["| volume | segments | image warp s | " + " | ".join(f"{m} s (× image)" for m in MODES) + " |",
             "|---|---:|---:|" + "---:|" * len(MODES)]
    for r in results:
        cells = " | ".join(f"{r['seconds'][m]:.2f} ({r['relative'][m]:.2f}×)" for m in MODES)
        lines.append(f"| {r['volume']} | {r['segments']} | {r['seconds']['image']:.2f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--volumes", default=",".join(VOLUMES), help="comma-separated subset")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("K", "J", "I"),
                        help="one volume of this shape (1 mm voxels) instead of --volumes")
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 4], help="segment counts to measure")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per call (best is reported)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.shape:
        cases = [("x".join(str(n) for n in reversed(args.shape)), tuple(args.shape), (1.0, 1.0, 1.0))]
    else:
        cases = [(name, *VOLUMES[name]) for name in args.volumes.split(",")]
    results = []
    for name, shape, spacing in cases:
        for segments in args.segments:
            result = measure(name, shape, spacing, segments=segments, repeats=args.repeats)
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
