"""Benchmark: one 3D elastic deformation plus a 5° rotation, medaug against its peers.

Run ``python -m benchmarks.bench_transforms --peer-python .venv-bench/bin/python``.
Every (library, volume, order) case runs in its own fresh subprocess so each
peak is its own. Inside the subprocess the case is first run once on a small
volume of the same dtype (warm-up: numba loads or compiles its kernels, torch
and SimpleITK start their thread pools; that time is reported separately),
then timed on the benchmark volume. Peak extra memory is the resident-set
high-water mark during the timed call minus the resident set just before it:
the kernel's high-water mark (``VmHWM``) is reset through
``/proc/self/clear_refs`` first, so earlier peaks (imports, warm-up) do not
count. The input volume exists before the measurement; the output counts.

Equal work: the same volume, grid, rotation, largest displacement, interpolation
order and thread count (``--threads``, given to numba, OpenMP and ITK through
their environment variables) for every library, and each timed call both
samples its parameters and applies them. TorchIO's call also copies its
subject and converts the volume to and from SimpleITK (a few 32 MB passes,
about 1 % of its time): that is what a TorchIO user pays. At cubic order
TorchIO uses SimpleITK's B-spline interpolation (a prefilter of the whole
volume, then a cubic B-spline), medaug Catmull-Rom convolution (no prefilter):
both are interpolating cubics, each library's cubic option.

The peers live in a separate virtual environment (torch, TorchIO, MONAI,
elasticdeform); this file imports only the standard library at module level so
that environment can run it as a plain script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent

#: name → (shape (k, j, i), dtype, voxel spacing mm)
VOLUMES: dict[str, tuple[tuple[int, int, int], str, tuple[float, float, float]]] = {
    "256x256x128-float32": ((128, 256, 256), "float32", (1.0, 1.0, 1.0)),
    "512x512x256-int16-CT": ((256, 512, 512), "int16", (1.0, 0.7, 0.7)),
}
WARMUP_SHAPE = (16, 32, 32)
LIBRARIES = ("medaug", "torchio", "monai", "elasticdeform")
ORDERS = ("linear", "cubic")
DEGREES = 5.0
#: Control grid: 7 points per in-plane axis for every library that has one.
CONTROL_POINTS = 7
MAX_DISPLACEMENT_MM = 7.5  # TorchIO's default


def _status() -> dict[str, int]:
    """Current and peak resident set size in bytes (Linux)."""
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) * 1024
    return values


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _volume(shape: tuple[int, int, int], dtype: str) -> Any:
    """A CT-like test volume: air, an elliptic body of soft tissue with noise, some bone."""
    import numpy as np

    rng = np.random.default_rng(0)
    k, j, i = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    body = (j[None, :, None] ** 2 / 0.8 + i[None, None, :] ** 2 / 0.95 + 0 * k[:, None, None]) < 0.7
    vol = np.full(shape, -1000.0, dtype=np.float32)
    vol[body] = 40.0
    vol += rng.normal(0.0, 20.0, shape).astype(np.float32)
    vol[:, shape[1] // 2 - 8 : shape[1] // 2 + 8, shape[2] // 2 - 8 : shape[2] // 2 + 8] = 1200.0
    return vol.astype(dtype)


def _control_spacing_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> float:
    # medaug's grid has ceil(L / s) + 3 points along an axis of length L:
    # 7 points in plane means 4 intervals over the largest in-plane extent.
    extent = max((n - 1) * s for n, s in zip(shape[1:], spacing[1:]))
    return extent / (CONTROL_POINTS - 3)


def _medaug(shape: tuple[int, int, int], spacing: tuple[float, float, float], order: str) -> Callable[[Any], Any]:
    import numpy as np

    from medaug.augment import elastic
    from medaug.augment.rotation import RotationParams
    from medaug.augment.spec import ElasticSpec
    from medaug.augment.variant import VariantParams, apply_variant
    from medaug.geometry import Geometry

    geometry = Geometry.axial(shape, spacing=spacing)
    control = _control_spacing_mm(shape, spacing)
    # The warm-up volume is small: keep its displacement inside the fold-free bound.
    spec = ElasticSpec(control, min(MAX_DISPLACEMENT_MM, 0.39 * control))

    def run(volume: Any) -> Any:
        # Sampled inside the timed call, as TorchIO's random transform samples its own.
        params = VariantParams(
            rotation=RotationParams(DEGREES),
            elastic=elastic.sample(np.random.default_rng(0), spec, geometry),
            interpolation=order,
        )
        # Output in the input's type, as the peers return it (an int16 CT stays int16).
        return apply_variant(volume, geometry, params, modality="CT", out_dtype=volume.dtype).data

    return run


def _torchio(shape: tuple[int, int, int], spacing: tuple[float, float, float], order: str) -> Callable[[Any], Any]:
    import torch
    import torchio as tio

    # One SimpleITK resampling for both transforms (TorchIO's fastest path).
    transform = tio.RandomAffineElasticDeformation(
        affine_kwargs={
            "scales": 0,
            "degrees": (DEGREES, DEGREES, 0, 0, 0, 0),
            "image_interpolation": "linear" if order == "linear" else "bspline",
        },
        elastic_kwargs={
            "num_control_points": CONTROL_POINTS,
            "max_displacement": MAX_DISPLACEMENT_MM,
            "image_interpolation": "linear" if order == "linear" else "bspline",
        },
    )
    affine = torch.diag(torch.tensor([spacing[0], spacing[1], spacing[2], 1.0], dtype=torch.float64)).numpy()

    def run(volume: Any) -> Any:
        image = tio.ScalarImage(tensor=torch.from_numpy(volume[None]), affine=affine)
        return transform(image).data

    return run


def _monai(shape: tuple[int, int, int], spacing: tuple[float, float, float], order: str) -> Callable[[Any], Any]:
    import math

    import torch
    from monai.transforms import Rand3DElastic

    transform = Rand3DElastic(
        sigma_range=(12.0, 12.0),
        magnitude_range=(MAX_DISPLACEMENT_MM, MAX_DISPLACEMENT_MM),
        prob=1.0,
        rotate_range=(math.radians(DEGREES), 0.0, 0.0),
        # MONAI: a string is torch grid_sample; an integer is a spline order (scipy backend).
        mode="bilinear" if order == "linear" else 3,
        padding_mode="zeros",
    )
    transform.set_random_state(0)

    def run(volume: Any) -> Any:
        return transform(torch.from_numpy(volume[None]))

    return run


def _elasticdeform(shape: tuple[int, int, int], spacing: tuple[float, float, float], order: str) -> Callable[[Any], Any]:
    import math

    import elasticdeform
    import numpy as np

    rng = np.random.default_rng(0)
    # A 7×7×7 control grid with displacements in voxels (elasticdeform is voxel-based).
    displacement = rng.normal(0.0, MAX_DISPLACEMENT_MM / 3.0, (3, CONTROL_POINTS, CONTROL_POINTS, CONTROL_POINTS))
    c, s = math.cos(math.radians(DEGREES)), math.sin(math.radians(DEGREES))
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    affine = np.concatenate([rot, (centre - rot @ centre)[:, None]], axis=1)

    def run(volume: Any) -> Any:
        return elasticdeform.deform_grid(
            volume, displacement, order=1 if order == "linear" else 3, cval=-1000.0, affine=affine
        )

    return run


FACTORIES: dict[str, Callable[..., Callable[[Any], Any]]] = {
    "medaug": _medaug,
    "torchio": _torchio,
    "monai": _monai,
    "elasticdeform": _elasticdeform,
}


def _versions(library: str) -> str:
    from importlib.metadata import version

    names = {"medaug": ["medaug", "numba"], "torchio": ["torchio", "torch", "SimpleITK"], "monai": ["monai", "torch"]}
    out = []
    for name in names.get(library, [library]):
        try:
            out.append(f"{name} {version(name)}")
        except Exception:  # noqa: BLE001 - a missing version is only cosmetic
            out.append(name)
    return ", ".join(out)


def worker(library: str, volume_name: str, order: str, repeats: int) -> dict[str, Any]:
    """Run one case in this process and return its measurements."""
    shape, dtype, spacing = VOLUMES[volume_name]
    factory = FACTORIES[library]
    small = _volume(WARMUP_SHAPE, dtype)
    t0 = time.perf_counter()
    factory(WARMUP_SHAPE, spacing, order)(small)
    warmup = time.perf_counter() - t0
    volume = _volume(shape, dtype)
    run = factory(shape, spacing, order)
    times, peaks = [], []
    for _ in range(repeats):
        _reset_peak()
        before = _status()["VmRSS"]
        t0 = time.perf_counter()
        out = run(volume)
        times.append(time.perf_counter() - t0)
        peaks.append(_status()["VmHWM"] - before)
        del out
    best = min(times)
    voxels = shape[0] * shape[1] * shape[2]
    return {
        "library": library,
        "volume": volume_name,
        "order": order,
        "seconds": best,
        "seconds_all": times,
        "voxels_per_s": voxels / best,
        "peak_extra_mb": max(peaks) / 2**20,
        "input_mb": volume.nbytes / 2**20,
        "warmup_s": warmup,
        "versions": _versions(library),
    }


def _run_case(python: str, library: str, volume: str, order: str, repeats: int, threads: int) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [python, str(HERE), "--worker", library, volume, order, str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"library": library, "volume": volume, "order": order, "error": tail[0][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| volume | order | library | s / volume | Mvoxels / s | peak extra MB | warm-up s | medaug speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['volume']} | {r['order']} | {r['library']} | failed: {r['error']} | | | | |")
            continue
        ours = next(
            (x for x in results if x["library"] == "medaug" and x["volume"] == r["volume"]
             and x["order"] == r["order"] and "error" not in x),
            None,
        )
        ratio = f"{r['seconds'] / ours['seconds']:.1f}×" if ours and r["library"] != "medaug" else ""
        lines.append(
            f"| {r['volume']} | {r['order']} | {r['library']} | {r['seconds']:.2f} | "
            f"{r['voxels_per_s'] / 1e6:.1f} | {r['peak_extra_mb']:.0f} | {r['warmup_s']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one case) and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("LIB", "VOLUME", "ORDER", "REPEATS"), help=argparse.SUPPRESS)
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-bench" / "bin" / "python"),
                        help="Python of the environment holding torch, TorchIO, MONAI and elasticdeform")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated subset")
    parser.add_argument("--volumes", default=",".join(VOLUMES), help="comma-separated subset")
    parser.add_argument("--orders", default=",".join(ORDERS), help="comma-separated subset")
    parser.add_argument("--skip", default="", help="comma-separated LIB:VOLUME pairs to leave out")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (best is reported)")
    parser.add_argument("--threads", type=int, default=2, help="threads every library may use")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    if args.worker:
        lib, vol, order, repeats = args.worker
        print(json.dumps(worker(lib, vol, order, int(repeats))))
        return 0
    skip = {tuple(s.split(":", 1)) for s in args.skip.split(",") if s}
    results = []
    for vol in args.volumes.split(","):
        for order in args.orders.split(","):
            for lib in args.libraries.split(","):
                if (lib, vol) in skip:
                    continue
                python = sys.executable if lib == "medaug" else args.peer_python
                repeats = args.repeats if VOLUMES[vol][0][0] <= 128 else 1
                result = _run_case(python, lib, vol, order, repeats, args.threads)
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads per library\n")
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
