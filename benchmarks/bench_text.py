"""Burned-in text detection: first-stage speed, OCR cost, recall and false positives.

Run ``python -m benchmarks.bench_text [--repeats N] [--per-kind K] [--free M]``
(pin it to one core, e.g. ``taskset -c 0``; Tesseract is run with
``OMP_THREAD_LIMIT=1``). It prints a markdown table of:

- triage milliseconds per 512x512 frame (median over ``--repeats`` passes over
  a set of CT frames, this process's CPU time: run it with ``NUMBA_NUM_THREADS=1``
  and ``OMP_NUM_THREADS=1``; target 15 ms on one core);
- OCR seconds per flagged frame (the :func:`~medaug.deid.text_detect.confirm`
  calls of :func:`~medaug.deid.text_detect.detect`, median wall time: the work
  is in the ``tesseract`` child process);
- recall (planted strings whose box a detected box overlaps) and the share of
  text-free frames flagged, on :mod:`fixtures.burned_text`;
- the share of frames flagged among warped variants of the bundled archive's
  text-free images (``--warped N``: each grey series of :mod:`fixtures.generate`
  with ``N`` variants of the bundled CT policy, as ``run`` samples and applies them
  under made-up series keys): what ``audit scan`` reports on a normal run. Its small
  CT phantoms are where the detector's false positives are (the text-free frames of
  :mod:`fixtures.burned_text` rarely reach OCR at all).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fixtures.burned_text import Planted, burned_image, text_free_images, text_images
from medaug.deid import text_detect
from medaug.deid.text_detect import detect, displayed, triage

SEED = 12


def _hit(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def triage_ms(*, repeats: int, frames: int = 8) -> float:
    """Median milliseconds of :func:`triage` on one 512x512 CT display."""
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(0,)))
    views = [displayed(burned_image("ct", rng=rng, texts=2).pixels, modality="CT", photometric="MONOCHROME2") for _ in range(frames)]
    times = []
    for _ in range(repeats):
        for view in views:
            start = time.process_time()
            triage(view)
            times.append((time.process_time() - start) * 1000.0)
    return statistics.median(times)


def quality(*, per_kind: int, free: int) -> dict[str, float]:
    """Recall, text-free flag rate and OCR seconds per flagged frame on the fixtures."""
    ocr_times: list[float] = []
    original = text_detect.confirm

    def timed(*args: object, **kwargs: object) -> list[tuple[int, int, int, int]]:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            ocr_times.append(time.perf_counter() - start)

    text_detect.confirm = timed  # type: ignore[assignment]
    try:
        total = found = 0
        for image in text_images(SEED, per_kind=per_kind):
            for f, frame in enumerate(image.frames()):
                boxes = detect(frame, modality=image.modality, photometric=image.photometric).boxes
                strings: list[Planted] = [p for p in image.planted if p.frame == f]
                total += len(strings)
                found += sum(any(_hit(b, p.box) for b in boxes) for p in strings)
        frames = text_free_images(SEED, count=free)
        flagged = sum(bool(detect(im.pixels, modality=im.modality, photometric=im.photometric).boxes) for im in frames)
    finally:
        text_detect.confirm = original
    return {
        "recall": found / max(total, 1),
        "strings": float(total),
        "false_positive_rate": flagged / max(len(frames), 1),
        "text_free_frames": float(len(frames)),
        "ocr_s_per_flagged_frame": statistics.median(ocr_times) if ocr_times else float("nan"),
    }


def warped_flags(*, variants: int) -> tuple[int, int]:
    """Frames flagged, and frames looked at, over ``variants`` warped variants of each archive series."""
    import tempfile
    from pathlib import Path

    from fixtures.generate import build_archive
    from medaug.augment.variant import apply_variant, variant_params
    from medaug.errors import MedaugError
    from medaug.ingest.archive import scan_archive
    from medaug.ingest.volume import load_series
    from medaug.policy.load import load_policy

    policy = load_policy(Path(__file__).resolve().parents[1] / "policies" / "ct-chest-conservative.yaml")
    flagged = frames = 0
    with tempfile.TemporaryDirectory(prefix="medaug-bench-text-") as scratch:
        root = Path(scratch) / "archive"
        build_archive(root)
        images = []
        for ref in scan_archive(root).series:
            try:
                image = load_series(ref).image
            except MedaugError:
                continue  # the archive's deliberately broken series
            if not image.is_colour:
                images.append(image)
        for v in range(variants):
            for j, image in enumerate(images):
                # A made-up series key per variant: what a run key changes.
                params = variant_params(policy.augment, seed=policy.seed, series_key=f"2.25.{SEED}{v:04d}{j:02d}",
                                        variant=1, geometry=image.geometry, modality="CT", regular=image.regular_grid)
                data = apply_variant(image.data, image.geometry, params, modality=image.modality,
                                     value_range=image.modality_range).data
                for k in range(data.shape[0]):
                    frames += 1
                    flagged += bool(detect(data[k], modality=image.modality, photometric=image.photometric).boxes)
    return flagged, frames


def main(argv: list[str] | None = None) -> int:
    """Print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=20, help="passes over the timing frames (default 20)")
    parser.add_argument("--per-kind", type=int, default=4, help="planted-text images per kind (default 4)")
    parser.add_argument("--free", type=int, default=200, help="text-free frames (default 200)")
    parser.add_argument("--warped", type=int, default=20,
                        help="warped variants of each bundled-archive series (default 20; 0 skips)")
    args = parser.parse_args(argv)
    ms = triage_ms(repeats=args.repeats)
    q = quality(per_kind=args.per_kind, free=args.free)
    warped = warped_flags(variants=args.warped) if args.warped > 0 else None
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| triage, ms per 512x512 frame (median, target 15) | {ms:.1f} |")
    print(f"| OCR, s per flagged frame (median) | {q['ocr_s_per_flagged_frame']:.2f} |")
    print(f"| recall ({int(q['strings'])} planted strings) | {q['recall']:.3f} |")
    print(f"| text-free frames flagged ({int(q['text_free_frames'])} frames) | {q['false_positive_rate']:.3f} |")
    if warped is not None:
        print(f"| warped variants of the bundled archive's frames flagged ({warped[1]} frames) | "
              f"{warped[0] / max(warped[1], 1):.4f} ({warped[0]}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
