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

The time split comes from one series run through the real task
(:func:`medaug.pipeline.task.run_series`) in this process, after a warm-up
series (numba kernels loaded), with timers wrapped around the stage functions
the task calls: read = ``load_series`` (pydicom read + decode), de-identify =
``deidentify``, transform = ``sample_variant`` + ``apply_variant``, write =
``write_series`` (pydicom encode + atomic write), audit = ``sha256_file`` of
every output + the fragment. The target ratio is
(de-identify + transform) / (read + write) <= 2.

Results go to ``docs/bench/throughput.md`` (and JSON on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
BASE_POLICY = ROOT / "policies" / "ct-chest-conservative.yaml"
VARIANTS = 4


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
            ds.PatientID, ds.PatientName = f"BENCH{s // 2:03d}", f"BENCH^PATIENT^{s // 2}"
            ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
            ds.StudyTime = "101500"
            ds.AccessionNumber, ds.StudyID = f"ACC{s:05d}", "1"
            ds.Modality, ds.Manufacturer = "CT", "BENCH"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
            ds.PatientPosition = "HFS"
            ds.ImagePositionPatient = [-size * 0.35, -size * 0.35, -k * 1.25]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = [0.7, 0.7]
            ds.SliceThickness = 1.25
            ds.KVP, ds.ConvolutionKernel = 120, "STANDARD"
            factory.pixel_module(ds, rows=size, cols=size, bits_stored=16, signed=True)
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
            ds.BurnedInAnnotation = "NO"
            ds.PixelData = np.clip(hu, -1024, 3071).astype(np.int16).tobytes()
            factory.save(ds, folder / f"IM{k + 1:04d}.dcm")


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


def run_end_to_end(policy: Path, archive: Path, out: Path, key: Path, *, workers: int | None, scheduler: str | None,
                   worker_pids: Callable[[subprocess.Popen[bytes]], list[int]]) -> dict[str, Any]:
    """One ``medaug run`` in a subprocess: wall time and peak worker memory."""
    argv = [sys.executable, "-m", "medaug.cli", "run", str(policy), str(archive), str(out), "--key", str(key)]
    argv += ["--scheduler", scheduler] if scheduler else ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with PeakSampler(lambda: worker_pids(proc)) as sampler:
        stdout, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"medaug run exited with {proc.returncode}")
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "seconds": seconds,
        "series": manifest["counts"]["series"],
        "files_written": manifest["counts"]["files_written"],
        "series_per_minute": 60 * manifest["counts"]["series"] / seconds,
        "peak_worker_rss": max(sampler.peaks.values(), default=0),
    }


# --- where the time goes -------------------------------------------------------------------


def stage_split(policy_path: Path, archive: Path, out: Path, key_path: Path) -> dict[str, float]:
    """Seconds per stage for one series through the real task (after a warm-up series)."""
    import medaug.pipeline.task as task_module
    from medaug.deid.keys import load_key
    from medaug.ingest.archive import scan_archive
    from medaug.pipeline.context import RunContext
    from medaug.policy.load import load_policy

    stages = {
        "read": ["load_series"],
        "deidentify": ["deidentify_series"],
        "transform": ["variant_params", "apply_variant"],
        "write": ["write_series"],
        # The release gate: collecting the sources' identifiers and searching every output.
        "gate": ["source_identifiers", "check_outputs"],
        "audit": ["sha256_file", "write_atomic"],
    }
    spent = dict.fromkeys(stages, 0.0)
    originals = {name: getattr(task_module, name) for names in stages.values() for name in names}

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
        t0 = time.perf_counter()
        task_module.run_series(tasks[1 % len(tasks)], ctx)
        total = time.perf_counter() - t0
    finally:
        for name, fn in originals.items():
            setattr(task_module, name, fn)
    spent["other"] = total - sum(spent.values())
    spent["total"] = total
    return spent


def run_config(config: str, policy: Path, archive: Path, out: Path, key: Path) -> tuple[str, dict[str, Any]]:
    """One configuration end to end (its output removed after): its display name and figures."""
    if config == "dask2":
        from distributed import Client, LocalCluster

        # One numba thread per worker process, as `make cluster` starts them (docs/distributed.md).
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                          dashboard_address=None, env={"NUMBA_NUM_THREADS": "1"}) as cluster, \
                Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
            r = run_end_to_end(policy, archive, out, key, workers=None, scheduler=cluster.scheduler_address,
                               worker_pids=lambda _proc: pids)
        name = "2-worker Dask LocalCluster"
    else:
        n = int(config[-1])
        # One worker runs in the medaug process itself; a pool's workers are its children.
        r = run_end_to_end(policy, archive, out, key, workers=n, scheduler=None,
                           worker_pids=(lambda p: [p.pid]) if n == 1 else (lambda p: _descendants(p.pid)))
        name = f"{n} local worker" + ("s" if n > 1 else "")
    shutil.rmtree(out)
    return name, r


def median_runs(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per configuration, the run of median wall time (the lower middle one for an even count)."""
    runs = {}
    for name in rounds[0]:
        ordered = sorted((r[name] for r in rounds), key=lambda r: r["seconds"])
        runs[name] = ordered[(len(ordered) - 1) // 2]
    return runs


# --- report --------------------------------------------------------------------------------


def _rounds_table(rounds: list[dict[str, dict[str, Any]]]) -> list[str]:
    """Wall time of every configuration in every round, and each round's speed-up of 2 local workers."""
    names = list(rounds[0])
    lines = [
        "",
        f"The table above gives each configuration's median run of {len(rounds)} rounds, run in turn. Every round:",
        "",
        "| round | " + " | ".join(f"{n} (s)" for n in names) + " | speed-up, 2 vs 1 local |",
        "| ---: | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    speedups = []
    for number, runs in enumerate(rounds, 1):
        one, two = runs.get("1 local worker"), runs.get("2 local workers")
        speedup = two["series_per_minute"] / one["series_per_minute"] if one and two else float("nan")
        speedups.append(speedup)
        cells = " | ".join(f"{runs[n]['seconds']:.1f}" for n in names)
        lines.append(f"| {number} | {cells} | {speedup:.2f} |")
    lines += ["", f"Speed-up of 2 local workers over 1: median **{float(np.median(speedups)):.2f}**, "
              f"lowest {min(speedups):.2f}, highest {max(speedups):.2f}."]
    return lines


def write_report(result: dict[str, Any], path: Path, command: str) -> None:
    """The Markdown page ``docs/bench/throughput.md``."""
    mib = 1024 * 1024
    a = result["archive"]
    lines = [
        "# End-to-end throughput of `medaug run`",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}.",
        "",
        f"Archive: {a['series']} synthetic CT series of {a['slices']} slices of {a['size']} x {a['size']} "
        f"(int16), written by `benchmarks/bench_throughput.py`. Policy: the bundled CT policy with "
        f"{VARIANTS} variants per series plus the de-identified original.",
        "",
        "| configuration | wall time (s) | series/min | files written | peak RSS per worker (MiB) | speed-up vs 1 worker |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    one = result["runs"].get("1 local worker")
    for name, r in result["runs"].items():
        speedup = r["series_per_minute"] / one["series_per_minute"] if one else float("nan")
        lines.append(
            f"| {name} | {r['seconds']:.1f} | {r['series_per_minute']:.2f} | {r['files_written']:,} | "
            f"{r['peak_worker_rss'] / mib:.0f} | {speedup:.2f} |"
        )
    if len(result["rounds"]) > 1:
        lines += _rounds_table(result["rounds"])
    s = result["stages"]
    ratio = (s["deidentify"] + s["transform"]) / (s["read"] + s["write"])
    lines += [
        "",
        "## Where the time goes (one series, one process)",
        "",
        "| stage | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    for stage in ("read", "deidentify", "transform", "write", "audit", "other"):
        lines.append(f"| {stage} | {s[stage]:.2f} | {100 * s[stage] / s['total']:.0f} % |")
    lines += [
        f"| total | {s['total']:.2f} | |",
        "",
        f"(de-identify + transform) / (read + write) = **{ratio:.2f}** (target <= 2).",
        "",
        "Read is `load_series` (pydicom reads and decodes every slice once); write is `write_series` for "
        f"the original and the {VARIANTS} variants (pydicom encodes, atomic write); audit is the SHA-256 of "
        "every output and the fragment; other is header copying, the burned-in check and bookkeeping.",
        "",
        "How to read these figures, and their run-to-run spread: [../benchmarks.md](../benchmarks.md).",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Generate, run, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--slices", type=int, default=128)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--configs", nargs="+", default=["local1", "local2", "dask2"], choices=["local1", "local2", "dask2"])
    parser.add_argument("--root", type=Path, help="scratch folder (default: a temporary one, removed after)")
    parser.add_argument("--rounds", type=int, default=1, help="run the configurations in turn this many times")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "bench" / "throughput.md")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    from medaug.deid.keys import write_key

    scratch = Path(tempfile.mkdtemp(prefix="medaug-throughput-", dir=args.root))
    try:
        archive = scratch / "archive"
        t0 = time.perf_counter()
        generate_archive(archive, series=args.series, slices=args.slices, size=args.size)
        print(f"archive written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        policy = bench_policy(scratch)
        key = scratch / "bench.key"
        write_key(key)
        result: dict[str, Any] = {
            "archive": {"series": args.series, "slices": args.slices, "size": args.size},
            "rounds": [],
        }
        result["stages"] = stage_split(policy, archive, scratch / "stages", key)
        shutil.rmtree(scratch / "stages")
        print(json.dumps(result["stages"]), file=sys.stderr)
        for round_ in range(args.rounds):
            runs = {}
            for config in args.configs:
                name, r = run_config(config, policy, archive, scratch / f"out-{config}", key)
                runs[name] = r
                print(f"round {round_ + 1}", name, json.dumps(r), file=sys.stderr)
            result["rounds"].append(runs)
        result["runs"] = median_runs(result["rounds"])
        command = "python -m benchmarks.bench_throughput " + " ".join(argv if argv is not None else sys.argv[1:])
        if "NUMBA_NUM_THREADS" in os.environ:
            command = f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']} {command}"
        write_report(result, args.report, command)
        print(json.dumps(result))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
