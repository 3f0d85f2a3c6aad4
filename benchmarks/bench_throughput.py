"""Benchmark: end-to-end throughput of ``medaug run`` and where the time goes.

Run ``python -m benchmarks.bench_throughput`` (full size: 20 CT series of 128
slices of 512 x 512, a policy with 4 variants; about 1.3 GB of input and 6.5 GB
of output per configuration, written under ``--root``). ``--series``,
``--slices`` and ``--size`` make a smaller trial. ``--rounds N`` runs the
configurations in turn N times (1, 2, 1, 2, ...), so a drift in the machine's
speed touches every configuration alike; the report gives each round's
speed-up and the median.

Three end-to-end configurations, each a fresh ``medaug run`` in a subprocess on
the same archive with the same key: 1 local worker, 2 local workers, and a
2-worker ``dask.distributed.LocalCluster`` (2 processes, 1 thread each) through
``--scheduler``. Series per minute is series / wall time of the run
(scan, tasks, log and manifest). Peak memory per worker is the largest
resident set any worker process reached (the kernel's VmHWM, read every 0.5 s).

Beside them, in the same rounds and on the same archive, each in a subprocess:

- ``composite``: the script a user would write for the same job
  (:mod:`benchmarks.peer_composite`: pydicom, dicognito, TorchIO, pydicom),
  run with ``.venv-bench``'s Python on the first ``--peer-series`` series
  (series per minute is a rate, so a few series give it; the job's bounds,
  interpolation order and variant count are the policy's, through
  :func:`composite_job`);
- ``pydicom1``, ``pydicom2``, ``raw``: the I/O floor (:mod:`benchmarks.io_floor`)
  with 1 and 2 processes, and raw byte copies: every source file read and
  written as many times as the run writes it.

After the first round, :func:`benchmarks.equal_work.check_outputs` checks what
medaug and the composite wrote (parse, geometry, new pixels per variant,
identifiers gone, no new dciodvfy error kind); the benchmark fails on any
problem, so the ratio is one of equal work.

The time split comes from one series run through the real task
(:func:`medaug.pipeline.task.run_series`) in this process, after a warm-up
series (numba kernels loaded), with timers wrapped around the stage functions
the task calls: read = ``load_series`` (pydicom read + decode), de-identify =
``deidentify``, transform = ``sample_variant`` + ``apply_variant``, write =
``write_series`` (pydicom encode + atomic write), audit = ``sha256_file`` of
every output + the fragment, detect = ``text_boxes`` (burned-in text on every source
frame, timed inside ``deidentify_series`` and taken out of its time). The target ratios
are (de-identify + transform) / (read + write) <= 2 and, for detection, run time with it
/ without it = total / (total - detect) <= 1.2 (detection cannot be turned off in a run,
so the time without it is the total less its own).

Results go to ``docs/bench/throughput.md`` (and JSON on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import ROOT, add_common_arguments, command_line, page_head, scratch_folder, write_page

HERE = Path(__file__).resolve()
BASE_POLICY = ROOT / "policies" / "ct-chest-conservative.yaml"
VARIANTS = 4
#: The Python of the peer environment that holds TorchIO and dicognito (``make .venv-bench/.composite``).
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
#: The archive's pixel spacing (mm, both in-plane axes) and slice spacing (mm).
PIXEL_MM, SLICE_MM = 0.7, 1.25

#: Each configuration's display name; the medaug runs come first.
NAMES = {
    "local1": "1 local worker",
    "local2": "2 local workers",
    "dask2": "2-worker Dask LocalCluster",
    "composite": "composite peer (pydicom, dicognito, TorchIO)",
    "pydicom1": "pydicom I/O floor, 1 process",
    "pydicom2": "pydicom I/O floor, 2 processes",
    "raw": "raw byte copies",
}
MEDAUG_CONFIGS = ("local1", "local2", "dask2")
#: The I/O floors: (kind of :mod:`benchmarks.io_floor`, processes).
FLOORS = {"pydicom1": ("pydicom", 1), "pydicom2": ("pydicom", 2), "raw": ("raw", 1)}
#: The pydicom floor each medaug configuration is held against: the same number of processes.
FLOOR_OF = {"local1": "pydicom1", "local2": "pydicom2", "dask2": "pydicom2"}


# --- the archive ---------------------------------------------------------------------------


def generate_archive(root: Path, *, series: int, slices: int, size: int, seed: int = 7) -> None:
    """Write ``series`` synthetic CT series (a body, lungs and a spine in HU, plus noise)."""
    from pydicom.uid import CTImageStorage

    from fixtures import factory

    rng = np.random.default_rng(seed)
    j, i = np.mgrid[0:size, 0:size] / size - 0.5
    body = (i / 0.45) ** 2 + (j / 0.35) ** 2 < 1
    lungs = (((i - 0.17) / 0.12) ** 2 + (j / 0.2) ** 2 < 1) | (((i + 0.17) / 0.12) ** 2 + (j / 0.2) ** 2 < 1)
    spine = (i / 0.05) ** 2 + ((j - 0.22) / 0.05) ** 2 < 1
    base = np.where(body, 40.0, -1000.0)
    base[lungs] = -850.0
    base[spine] = 700.0
    for s in range(series):
        folder = root / f"P{s // 2:03d}" / f"S{s:03d}"
        folder.mkdir(parents=True)
        for k in range(slices):
            hu = base + rng.normal(0, 12, base.shape)
            ds = factory.image_dataset(CTImageStorage, f"1.2.826.0.1.3680043.10.543.9.{s}.{k + 1}")
            ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.543.7.{s}"
            ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.543.8.{s}"
            ds.FrameOfReferenceUID = f"1.2.826.0.1.3680043.10.543.6.{s}"
            ds.PatientID, ds.PatientName = f"BENCH{s // 2:03d}", f"SYNTHETIC^PATIENT{s // 2:03d}"
            ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
            ds.StudyTime = "101500"
            ds.AccessionNumber, ds.StudyID = f"ACC{s:05d}", "1"
            ds.Modality, ds.Manufacturer = "CT", "BENCH"
            ds.BodyPartExamined = "CHEST"  # in the bundled CT policy's scope
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
            ds.PatientPosition = "HFS"
            ds.ImagePositionPatient = [-size * PIXEL_MM / 2, -size * PIXEL_MM / 2, -k * SLICE_MM]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
            ds.SliceThickness = SLICE_MM
            ds.KVP, ds.ConvolutionKernel = 120, "STANDARD"
            factory.pixel_module(ds, rows=size, cols=size, bits_stored=16, signed=True)
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
            ds.BurnedInAnnotation = "NO"
            ds.PixelData = np.clip(hu, -1024, 3071).astype(np.int16).tobytes()
            factory.save(ds, folder / f"IM{k + 1:04d}.dcm")


def add_archive_arguments(parser: argparse.ArgumentParser, *, series: int = 20, slices: int = 128) -> None:
    """``--series``, ``--slices`` and ``--size`` of the archive, full size (20 x 128 x 512 x 512) by default."""
    parser.add_argument("--series", type=int, default=series, help=f"series in the archive (default {series})")
    parser.add_argument("--slices", type=int, default=slices, help=f"slices a series (default {slices})")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of a slice (default 512)")


def run_inputs(scratch: Path, *, series: int, slices: int, size: int) -> tuple[Path, Path, Path]:
    """The archive, the approved benchmark policy and a key, written into ``scratch`` for ``medaug run``."""
    from medaug.deid.keys import write_key

    archive, key = scratch / "archive", scratch / "bench.key"
    t0 = time.perf_counter()
    generate_archive(archive, series=series, slices=slices, size=size)
    print(f"archive written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    policy = bench_policy(scratch)
    write_key(key)
    return archive, policy, key


def archive_geometry(*, slices: int, size: int) -> Any:
    """The grid of every series :func:`generate_archive` writes (a :class:`medaug.geometry.Geometry`)."""
    from medaug.geometry import Geometry

    return Geometry.axial((slices, size, size), spacing=(SLICE_MM, PIXEL_MM, PIXEL_MM))


def bench_policy(folder: Path) -> Path:
    """The bundled CT policy with 4 variants per series, approved for the benchmark."""
    from medaug.policy.approval import approve

    text = BASE_POLICY.read_text()
    assert "variants_per_series: 2" in text
    path = folder / "bench-ct.yaml"
    path.write_text(text.replace("id: ct-chest-conservative", "id: bench-ct").replace(
        "variants_per_series: 2", f"variants_per_series: {VARIANTS}"))
    approve(path, "benchmark")
    return path


def copies_per_source(policy_path: Path) -> int:
    """Files a run writes per source image: the de-identified original (if kept) and each variant."""
    from medaug.policy.load import load_policy

    policy = load_policy(policy_path)
    return int(policy.include_original) + policy.variants_per_series


def composite_job(policy_path: Path, geometry: Any, *, series: int) -> dict[str, Any]:
    """The composite peer's job: the policy's bounds in the terms TorchIO takes them.

    TorchIO's elastic grid spans the image with as many control points per axis
    as given; medaug's grid for the policy's control spacing on this geometry
    (:func:`medaug.augment.bspline.grid_shape`) gives that count, so both warp
    with the same number of control points and the same largest displacement.
    TorchIO needs at least 5 points per axis with 2 locked layers, so the
    geometry must span at least two control intervals along every axis.
    """
    from medaug.augment.bspline import grid_shape
    from medaug.policy.load import load_policy

    policy = load_policy(policy_path)
    augment = policy.augment
    if augment.rotation is None or augment.elastic is None or augment.intensity is None:
        raise ValueError("the composite peer mirrors a policy with rotation, elastic and intensity transforms")
    return {
        "series": series,
        "variants": policy.variants_per_series,
        "include_original": policy.include_original,
        "seed": policy.seed,
        "interpolation": augment.interpolation,
        "max_degrees": augment.rotation.max_degrees,
        "max_tilt_degrees": augment.rotation.max_tilt_degrees,
        "control_points_kji": list(grid_shape(geometry, augment.elastic.control_spacing_mm)),
        "max_displacement_mm": augment.elastic.max_displacement_mm,
        "max_shift": augment.intensity.max_shift,
    }


# --- end to end ----------------------------------------------------------------------------


class PeakSampler:
    """Keeps each process's peak resident set: the kernel's own high-water mark (VmHWM).

    The kernel tracks the peak, so the sampler only has to read it before a
    process exits (every 0.5 s). Finding a pool's workers means scanning /proc,
    so the process list is refreshed every 2 s only: the measuring should take
    as little CPU time as it can from the run it measures, on two cores.
    """

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        pids: list[int] = []
        found = -float("inf")
        while not self._stop.wait(0.5):
            if not pids or time.monotonic() - found >= 2.0:
                pids, found = self.pids(), time.monotonic()
            for pid in pids:
                peak = _high_water_mark(pid)
                if peak is not None:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), peak)


def _high_water_mark(pid: int) -> int | None:
    """Peak resident set of a live process in bytes (Linux), or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def timed_process(argv: list[str], worker_pids: Callable[[subprocess.Popen[bytes]], list[int]],
                  *, ok: tuple[int, ...] = (0,)) -> tuple[float, bytes, int]:
    """Run ``argv`` from the repository root: wall time, standard output and peak worker memory."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with PeakSampler(lambda: worker_pids(proc)) as sampler:
        stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode not in ok:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} exited with {proc.returncode}: {tail[0][:200]}")
    return seconds, stdout, max(sampler.peaks.values(), default=0)


def medaug_images(out: Path) -> list[Path]:
    """The image files of a ``medaug run`` dataset."""
    from medaug.dataset import layout

    return sorted(p for p in out.rglob("*") if p.is_file() and layout.is_image_path(p.relative_to(out).as_posix()))


def _bytes(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)


def run_end_to_end(policy: Path, archive: Path, out: Path, key: Path, *, workers: int | None, scheduler: str | None,
                   worker_pids: Callable[[subprocess.Popen[bytes]], list[int]]) -> dict[str, Any]:
    """One ``medaug run`` in a subprocess: wall time and peak worker memory."""
    argv = [sys.executable, "-m", "medaug.cli", "run", str(policy), str(archive), str(out), "--key", str(key)]
    argv += ["--scheduler", scheduler] if scheduler else ["--workers", str(workers)]
    seconds, _, peak = timed_process(argv, worker_pids, ok=(0, 3))
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "seconds": seconds,
        "series": manifest["counts"]["series"],
        "files_written": manifest["counts"]["files_written"],
        "bytes_written": _bytes(medaug_images(out)),
        "series_per_minute": 60 * manifest["counts"]["series"] / seconds,
        "peak_worker_rss": peak,
    }


def run_composite(job: Path, archive: Path, out: Path) -> dict[str, Any]:
    """The composite peer in a subprocess of the peer environment: wall time and peak memory."""
    argv = [str(PEER_PYTHON), str(HERE.parent / "peer_composite.py"), str(job), str(archive), str(out)]
    seconds, stdout, peak = timed_process(argv, lambda p: [p.pid])
    counts = json.loads(stdout.decode().strip().splitlines()[-1])
    return {
        "seconds": seconds,
        "series": counts["series"],
        "files_written": counts["files_written"],
        "bytes_written": _bytes(sorted(out.rglob("*.dcm"))),
        "series_per_minute": 60 * counts["series"] / seconds,
        "peak_worker_rss": peak,
    }


def run_floor(kind: str, archive: Path, out: Path, *, copies: int, workers: int) -> dict[str, Any]:
    """One I/O floor in a subprocess (:mod:`benchmarks.io_floor`): wall time and what it wrote."""
    argv = [sys.executable, "-m", "benchmarks.io_floor", kind, str(archive), str(out),
            "--copies", str(copies), "--workers", str(workers)]
    pids = (lambda p: [p.pid]) if workers == 1 else (lambda p: _descendants(p.pid))
    seconds, stdout, peak = timed_process(argv, pids)
    counts = json.loads(stdout.decode().strip().splitlines()[-1])
    return {
        "seconds": seconds,
        "files_read": counts["files_read"],
        "files_written": counts["files_written"],
        "bytes_written": _bytes(sorted(p for p in out.rglob("*") if p.is_file())),
        "peak_worker_rss": peak,
    }


# --- where the time goes -------------------------------------------------------------------


def stage_split(policy_path: Path, archive: Path, out: Path, key_path: Path) -> dict[str, float]:
    """Seconds per stage for one series through the real task (after a warm-up series)."""
    import medaug.pipeline.task as task_module
    from medaug.deid.keys import load_key
    from medaug.ingest.archive import scan_archive
    from medaug.pipeline.context import RunContext
    from medaug.policy.load import load_policy

    import medaug.deid.text_detect as text_detect_module

    stages = {
        "read": ["load_series"],
        "deidentify": ["deidentify_series"],
        "transform": ["variant_params", "apply_variant"],
        "write": ["write_series"],
        # The release gate: collecting the sources' identifiers and searching every output.
        "gate": ["source_identifiers", "check_outputs"],
        "audit": ["sha256_file", "write_atomic"],
    }
    spent = dict.fromkeys([*stages, "detect"], 0.0)
    originals = {name: getattr(task_module, name) for names in stages.values() for name in names}
    # Burned-in text detection runs inside deidentify_series, on every source frame
    # (medaug.deid.series calls text_detect.text_boxes): timed on its own, then taken out of
    # de-identify's time so the stages still add up to the total.
    detect_original = text_detect_module.text_boxes

    def timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[stage] += time.perf_counter() - t0
        return wrapper

    scan = scan_archive(archive)
    ctx = RunContext(policy=load_policy(policy_path), key=load_key(key_path), archive=archive.resolve(), outdir=out.resolve())
    out.mkdir(parents=True)
    tasks = [task_module.SeriesTask(index=i, ref=ref) for i, ref in enumerate(scan.series)]
    task_module.run_series(tasks[0], ctx)  # warm-up: numba kernels, pydicom dictionaries
    try:
        for stage, names in stages.items():
            for name in names:
                setattr(task_module, name, timed(stage, originals[name]))
        setattr(text_detect_module, "text_boxes", timed("detect", detect_original))
        t0 = time.perf_counter()
        task_module.run_series(tasks[1 % len(tasks)], ctx)
        total = time.perf_counter() - t0
    finally:
        for name, fn in originals.items():
            setattr(task_module, name, fn)
        setattr(text_detect_module, "text_boxes", detect_original)
    spent["deidentify"] -= spent["detect"]
    spent["other"] = total - sum(spent.values())
    spent["total"] = total
    return spent


def detection_ratio(stages: dict[str, float]) -> float:
    """Run time with burned-in text detection over the time without it: total / (total - detect).

    Detection cannot be switched off in a run (every frame is looked at, default-deny), so
    the time without it is the measured total less the detection stage's own time.
    """
    return stages["total"] / (stages["total"] - stages["detect"])


def run_config(config: str, policy: Path, archive: Path, out: Path, key: Path, job: Path) -> dict[str, Any]:
    """One configuration end to end, writing into ``out``: its figures."""
    if config == "composite":
        return run_composite(job, archive, out)
    if config in FLOORS:
        kind, workers = FLOORS[config]
        return run_floor(kind, archive, out, copies=copies_per_source(policy), workers=workers)
    if config == "dask2":
        from distributed import Client, LocalCluster

        # One numba thread per worker process, as `make cluster` starts them (docs/distributed.md).
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"}) as cluster, \
                Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
            return run_end_to_end(policy, archive, out, key, workers=None, scheduler=cluster.scheduler_address,
                                  worker_pids=lambda _proc: pids)
    n = int(config[-1])
    # One worker runs in the medaug process itself; a pool's workers are its children.
    return run_end_to_end(policy, archive, out, key, workers=n, scheduler=None,
                          worker_pids=(lambda p: [p.pid]) if n == 1 else (lambda p: _descendants(p.pid)))


def check_equal_work(config: str, archive: Path, out: Path, *, copies: int, series: int) -> list[str]:
    """What :func:`benchmarks.equal_work.check_outputs` finds wrong with a run's outputs (dciodvfy if installed)."""
    from benchmarks.equal_work import check_outputs
    from benchmarks.peer_composite import series_folders

    sources = [sorted(folder.glob("*.dcm")) for folder in series_folders(archive)[:series]]
    outputs = sorted(out.rglob("*.dcm")) if config == "composite" else medaug_images(out)
    return check_outputs(sources, outputs, copies=copies, dciodvfy=shutil.which("dciodvfy"))


def median_runs(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per configuration, the run of median wall time (the lower middle one for an even count)."""
    runs = {}
    for name in rounds[0]:
        ordered = sorted((r[name] for r in rounds), key=lambda r: r["seconds"])
        runs[name] = ordered[(len(ordered) - 1) // 2]
    return runs


# --- report --------------------------------------------------------------------------------


def _rounds_table(rounds: list[dict[str, dict[str, Any]]]) -> list[str]:
    """Wall time of every configuration in every round, and each round's 2-vs-1-worker speed-up if both ran."""
    configs = list(rounds[0])
    scaling = "local1" in configs and "local2" in configs
    extra = " speed-up, 2 vs 1 local |" if scaling else ""
    lines = [
        "",
        f"Each table gives each configuration's median run of {len(rounds)} rounds, run in turn, and each "
        "ratio the median of the rounds' ratios. Every round:",
        "",
        "| round | " + " | ".join(f"{NAMES[c]} (s)" for c in configs) + " |" + extra,
        "| ---: | " + " | ".join("---:" for _ in configs) + " |" + (" ---: |" if scaling else ""),
    ]
    for number, runs in enumerate(rounds, 1):
        cells = " | ".join(f"{runs[c]['seconds']:.1f}" for c in configs)
        speedup = f" {runs['local2']['series_per_minute'] / runs['local1']['series_per_minute']:.2f} |" if scaling else ""
        lines.append(f"| {number} | {cells} |{speedup}")
    if scaling:
        speedups = round_ratios(rounds, "local2", "local1", "series_per_minute")
        lines += ["", f"Speed-up of 2 local workers over 1: median **{float(np.median(speedups)):.2f}**, "
                  f"lowest {min(speedups):.2f}, highest {max(speedups):.2f}."]
    return lines


def round_ratios(rounds: list[dict[str, dict[str, Any]]], numerator: str, denominator: str,
                 figure: str) -> list[float]:
    """``figure`` of one configuration over another's, round by round (both ran in every round)."""
    return [runs[numerator][figure] / runs[denominator][figure] for runs in rounds]


def _spread(ratios: list[float]) -> str:
    return f"**{float(np.median(ratios)):.2f}** | {min(ratios):.2f} | {max(ratios):.2f}"


def _composite_section(result: dict[str, Any], medaug: list[str]) -> list[str]:
    mib = 1024 * 1024
    peer = result["runs"]["composite"]
    lines = [
        "",
        "## Against the script a user would write",
        "",
        f"The composite peer (`benchmarks/peer_composite.py`, run with `.venv-bench`'s Python: pydicom reads a "
        "series, dicognito de-identifies each file, TorchIO's `RandomAffineElasticDeformation` warps the "
        "volume within the policy's bounds at its interpolation order, pydicom writes every slice of the "
        f"original and of every variant) on the first {peer['series']} series of the same archive: "
        f"{peer['seconds']:.1f} s, {peer['series_per_minute']:.2f} series/min, {peer['files_written']:,} files, "
        f"peak RSS {peer['peak_worker_rss'] / mib:.0f} MiB.",
        "",
        "| medaug configuration | medaug series/min | composite series/min | medaug ÷ composite | lowest | highest |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for config in medaug:
        ratios = round_ratios(result["rounds"], config, "composite", "series_per_minute")
        lines.append(f"| {NAMES[config]} | {result['runs'][config]['series_per_minute']:.2f} | "
                     f"{peer['series_per_minute']:.2f} | {_spread(ratios)} |")
    lines += ["", "Target: medaug ≥ 15 × the composite."]
    return lines


def _floor_section(result: dict[str, Any], medaug: list[str]) -> list[str]:
    mb = 1e6
    floors = [c for c in FLOORS if c in result["runs"]]
    lines = [
        "",
        "## Against the I/O floor",
        "",
        "Every source file read and written as many times as the run writes it, nothing else "
        "(`benchmarks/io_floor.py`; one flush to disk per series, as the run does): with pydicom "
        "(`dcmread`, then `save_as` per copy) and as raw bytes.",
        "",
        "| floor | wall time (s) | files read | files written | MB written |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for config in floors:
        r = result["runs"][config]
        lines.append(f"| {NAMES[config]} | {r['seconds']:.1f} | {r['files_read']:,} | {r['files_written']:,} | "
                     f"{r['bytes_written'] / mb:,.0f} |")
    header = "| medaug configuration | wall time (s) | MB written | pydicom floor | ÷ pydicom floor | lowest | highest |"
    rows = []
    for config in medaug:
        run = result["runs"][config]
        floor = FLOOR_OF[config]
        if floor in result["runs"]:
            ratios = round_ratios(result["rounds"], config, floor, "seconds")
            rows.append(f"| {NAMES[config]} | {run['seconds']:.1f} | {run['bytes_written'] / mb:,.0f} | "
                        f"{result['runs'][floor]['seconds']:.1f} s | {_spread(ratios)} |")
    if rows:
        lines += ["", header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |", *rows,
                  "", "Target: a `medaug run` within 1.5 × the pydicom floor of as many processes."]
    if "raw" in result["runs"]:
        lines += ["", "| medaug configuration | ÷ raw byte copies | lowest | highest |", "| --- | ---: | ---: | ---: |"]
        for config in medaug:
            lines.append(f"| {NAMES[config]} | {_spread(round_ratios(result['rounds'], config, 'raw', 'seconds'))} |")
    return lines


def _equal_work_lines(checked: dict[str, list[str]], dciodvfy: bool) -> list[str]:
    what = ("parse, decode, keep their sources' geometry, give every variant pixels of its own, keep no source "
            "identifier in its element" + (" and show no dciodvfy error kind the sources lack" if dciodvfy else
                                           " (dciodvfy not installed: not run)"))
    lines = ["", "## Equal work", "",
             f"Checked after the first round (`benchmarks/equal_work.py`): the outputs {what}."]
    for config, problems in checked.items():
        verdict = "no problem" if not problems else f"{len(problems)} problems: " + "; ".join(problems[:5])
        lines.append(f"- {NAMES[config]}: {verdict}.")
    return lines


def write_report(result: dict[str, Any], path: Path, command: str) -> None:
    """The Markdown page ``docs/bench/throughput.md``."""
    mib = 1024 * 1024
    a = result["archive"]
    medaug = [c for c in MEDAUG_CONFIGS if c in result["runs"]]
    lines = [
        *page_head("End-to-end throughput of `medaug run`", command),
        "",
        f"Archive: {a['series']} synthetic CT series of {a['slices']} slices of {a['size']} x {a['size']} "
        f"(int16), written by `benchmarks/bench_throughput.py`. Policy: the bundled CT policy with "
        f"{VARIANTS} variants per series plus the de-identified original.",
    ]
    one = result["runs"].get("local1")
    if medaug:
        lines += [
            "",
            "| configuration | wall time (s) | series/min | files written | peak RSS per worker (MiB) |"
            + (" speed-up vs 1 worker |" if one else ""),
            "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if one else ""),
        ]
    for config in medaug:
        r = result["runs"][config]
        speedup = f" {r['series_per_minute'] / one['series_per_minute']:.2f} |" if one else ""
        lines.append(
            f"| {NAMES[config]} | {r['seconds']:.1f} | {r['series_per_minute']:.2f} | {r['files_written']:,} | "
            f"{r['peak_worker_rss'] / mib:.0f} |{speedup}"
        )
    if len(result["rounds"]) > 1:
        lines += _rounds_table(result["rounds"])
    if "composite" in result["runs"] and medaug:
        lines += _composite_section(result, medaug)
    if any(c in result["runs"] for c in FLOORS):
        lines += _floor_section(result, medaug)
    if result["equal_work"]:
        lines += _equal_work_lines(result["equal_work"], result["dciodvfy"])
    s = result["stages"]
    ratio = (s["deidentify"] + s["transform"]) / (s["read"] + s["write"])
    lines += [
        "",
        "## Where the time goes (one series, one process)",
        "",
        "| stage | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    for stage in ("read", "deidentify", "detect", "transform", "write", "gate", "audit", "other"):
        lines.append(f"| {stage} | {s[stage]:.2f} | {100 * s[stage] / s['total']:.0f} % |")
    lines += [
        f"| total | {s['total']:.2f} | |",
        "",
        f"(de-identify + transform) / (read + write) = **{ratio:.2f}** (target <= 2).",
        "",
        f"Run time with burned-in text detection / without = total / (total - detect) = "
        f"**{detection_ratio(s):.2f}** (target <= 1.2).",
        "",
        "Read is `load_series` (pydicom reads and decodes every slice once); de-identify is "
        "`deidentify_series` without its text detection; detect is `text_boxes` on every source frame "
        "(triage, and OCR of what triage flags); write is `write_series` for "
        f"the original and the {VARIANTS} variants (pydicom encodes, atomic write); gate is the release gate "
        "(the sources' identifiers collected, every output searched); audit is the SHA-256 of "
        "every output and the fragment; other is header copying, label carrying and bookkeeping.",
        "",
        "How to read these figures, and their run-to-run spread: [../benchmarks.md](../benchmarks.md).",
        "",
    ]
    write_page(path, lines)


def main(argv: list[str] | None = None) -> int:
    """Generate, run, measure, check, report; 1 when a run's outputs fall short of the job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_archive_arguments(parser)
    parser.add_argument("--configs", nargs="+", default=list(NAMES), choices=list(NAMES))
    parser.add_argument("--peer-series", type=int, default=4,
                        help="series the composite peer processes (the first ones; default 4)")
    add_common_arguments(parser, page="throughput.md", rounds=1,
                         rounds_help="run the configurations in turn this many times")
    args = parser.parse_args(argv)
    if "composite" in args.configs and not PEER_PYTHON.exists():
        parser.error(f"the composite peer needs {PEER_PYTHON.relative_to(ROOT)} (make .venv-bench/.composite); "
                     "or leave it out of --configs")

    with scratch_folder("throughput", args.root) as scratch:
        archive, policy, key = run_inputs(scratch, series=args.series, slices=args.slices, size=args.size)
        peer_series = min(args.peer_series, args.series)
        job = scratch / "composite-job.json"
        job.write_text(json.dumps(composite_job(policy, archive_geometry(slices=args.slices, size=args.size),
                                                series=peer_series)))
        result: dict[str, Any] = {
            "archive": {"series": args.series, "slices": args.slices, "size": args.size},
            "rounds": [],
            "equal_work": {},
            "dciodvfy": shutil.which("dciodvfy") is not None,
        }
        result["stages"] = stage_split(policy, archive, scratch / "stages", key)
        shutil.rmtree(scratch / "stages")
        print(json.dumps(result["stages"]), file=sys.stderr)
        # The outputs of the first medaug configuration and of the composite are checked once.
        first_medaug = next((c for c in args.configs if c in MEDAUG_CONFIGS), None)
        to_check = {c for c in (first_medaug, "composite") if c in args.configs}
        for round_ in range(args.rounds):
            runs = {}
            for config in args.configs:
                out = scratch / f"out-{config}"
                runs[config] = run_config(config, policy, archive, out, key, job)
                print(f"round {round_ + 1}", NAMES[config], json.dumps(runs[config]), file=sys.stderr)
                if round_ == 0 and config in to_check:
                    series = peer_series if config == "composite" else args.series
                    result["equal_work"][config] = check_equal_work(
                        config, archive, out, copies=copies_per_source(policy), series=series)
                    print("equal work", NAMES[config], json.dumps(result["equal_work"][config]), file=sys.stderr)
                shutil.rmtree(out)
            result["rounds"].append(runs)
        result["runs"] = median_runs(result["rounds"])
        command = command_line("bench_throughput", argv)
        if "NUMBA_NUM_THREADS" in os.environ:
            command = f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']} {command}"
        write_report(result, args.report, command)
        print(json.dumps(result))
    return 1 if any(result["equal_work"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
