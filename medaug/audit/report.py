"""``medaug audit report``: one self-contained HTML page about a dataset, for auditors.

Everything is inline (CSS; plots and thumbnails as PNG ``data:`` URIs drawn
with matplotlib and Pillow, see :mod:`medaug.figures`); the page loads nothing
from a network. It shows what the log and manifest say —
counts, the policy and its approval, realised parameters against the policy's
bounds — beside the result of :func:`medaug.audit.verify.verify_dataset`, and
thumbnails made from *output* files only. Every piece of text is escaped with
:func:`html.escape`; the log holds no identifying value to begin with.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from medaug.audit.chain import check_chain, read_lines
from medaug.dataset import layout
from medaug.dataset import records as rec
from medaug.figures import figure_png, grey_png, new_figure, outlined_slices_png, style
from medaug.display import display_window, to_uint8
from medaug.audit.verify import VerifyResult, verify_dataset
from medaug.augment.spec import AugmentSpec
from medaug.errors import MedaugError, TransformError
from medaug.atomic import write_atomic

#: Most thumbnails shown (one per variant series, in sorted path order).
MAX_THUMBNAILS = 8
#: Most labelled variants shown with their label outlines.
MAX_LABEL_FIGURES = 2

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 10px;text-align:left}
th{background:#f2f2f2}.pass{color:#fff;background:#2a7d2a;padding:2px 10px;border-radius:4px}
.fail{color:#fff;background:#b22;padding:2px 10px;border-radius:4px}
pre{white-space:pre-wrap;background:#f7f7f7;border:1px solid #ddd;padding:8px;overflow:auto;font-size:.85em}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots img{width:560px;height:340px}.thumbs{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;text-align:center;font-size:.8em}figure img{width:160px;height:160px;object-fit:contain;background:#000}
figure.outline img{width:560px;height:320px;background:#fff}
"""


@dataclass(frozen=True)
class Series:
    """One plotted quantity: values per variant and how to draw them."""

    label: str
    values: list[float]
    colour: str


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _load(outdir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records of the log (as far as they parse) and the manifest (empty when unreadable)."""
    records: list[dict[str, Any]] = []
    try:
        records, _ = check_chain(read_lines(layout.log_path(outdir)))
    except (OSError, ValueError):
        pass
    try:
        manifest = json.loads(layout.manifest_path(outdir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    return records, manifest if isinstance(manifest, dict) else {}


def _first(records: list[dict[str, Any]], kind: type[rec.RunStart] | type[rec.RunEnd]) -> dict[str, Any]:
    return next((r for r in records if rec.is_type(r, kind)), {})


def _table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> str:
    head = "" if header is None else "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


#: Size of a parameter plot in pixels.
PLOT_SIZE = (560, 340)

#: Colour of bound lines and of points beyond a bound.
BOUND_COLOUR = "#c33"


def plot_png(title: str, series: list[Series], *, bounds: Sequence[tuple[float, str]] = (), unit: str = "") -> bytes:
    """A scatter plot of values per variant with dashed, labelled bound lines, as PNG bytes.

    The x axis is the variant's place in log order, the y axis the value in
    ``unit``; points beyond the outermost bound of their sign are drawn as red
    crosses. Without values the plot says so.

    Examples
    --------
    >>> plot_png("t", [Series("a", [1.0, 7.0], "#000")], bounds=[(5.0, "+b")])[:4]
    b'\\x89PNG'
    """
    levels = [b for b, _ in bounds]
    upper = max([b for b in levels if b > 0], default=None)
    lower = min([b for b in levels if b < 0], default=None)
    with style():
        fig = new_figure(*PLOT_SIZE)
        ax = fig.add_axes((0.11, 0.27, 0.56, 0.63))
        ax.set_title(title, loc="left", fontweight="bold")
        ax.set_xlabel("variant (log order)")
        ax.set_ylabel(unit or "value")
        values = [v for s in series for v in s.values]
        if not values:
            ax.text(0.5, 0.5, "no values\n(transform not in the policy or no variants)", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.axhline(0.0, color="#bbb", linewidth=0.8)
            for level, label in bounds:
                ax.axhline(level, color=BOUND_COLOUR, linestyle="--", linewidth=1.0)
                ax.annotate(f"{label} = {level:.4g}", xy=(1.0, level), xycoords=("axes fraction", "data"),
                            xytext=(4, 0), textcoords="offset points", va="center", fontsize=8, color=BOUND_COLOUR)
            for s in series:
                x = np.arange(1, len(s.values) + 1)
                y = np.asarray(s.values, dtype=np.float64)
                out = np.zeros(len(y), dtype=bool)
                if upper is not None:
                    out |= y > upper + 1e-9
                if lower is not None:
                    out |= y < lower - 1e-9
                ax.plot(x[~out], y[~out], "o", markersize=3.5, color=s.colour, label=s.label)
                if out.any():
                    ax.plot(x[out], y[out], "x", markersize=7, mew=2, color=BOUND_COLOUR, label=f"{s.label} beyond bound")
            lo, hi = min(values + levels + [0.0]), max(values + levels + [0.0])
            pad = (hi - lo) * 0.08 or 1.0
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_xlim(0.5, max(len(s.values) for s in series) + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, color="#eee", linewidth=0.6)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8, frameon=False)
        return figure_png(fig)


def plot_figure(title: str, series: list[Series], *, bounds: Sequence[tuple[float, str]] = (), unit: str = "") -> str:
    """:func:`plot_png` as an ``<img>`` with a ``data:`` URI, its title as alternative text."""
    data = base64.b64encode(plot_png(title, series, bounds=bounds, unit=unit)).decode("ascii")
    alt = f"{title} [{unit}]" if unit else title
    return f'<img class="plot" alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _spec(run_start: dict[str, Any]) -> AugmentSpec | None:
    content = run_start.get("policy", {}).get("content", {})
    try:
        return AugmentSpec.from_mapping(content.get("transforms", {}) if isinstance(content, dict) else {})
    except (TransformError, AttributeError, TypeError):
        return None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parameter_plots(records: list[dict[str, Any]], spec: AugmentSpec | None) -> list[str]:
    """The plots (``<img>`` elements) of realised parameters (variants ≥ 1) against the policy's bounds."""
    derives = [r for r in records if rec.is_type(r, rec.VariantDerive) and r.get("params")]
    rot: dict[str, list[float]] = defaultdict(list)
    comp: list[float] = []
    length: list[float] = []
    jmin: list[float] = []
    jmax: list[float] = []
    shift: list[float] = []
    scale: list[float] = []
    for r in derives:
        p = r["params"] if isinstance(r["params"], dict) else {}
        for key in ("degrees", "tilt_row_degrees", "tilt_column_degrees"):
            v = _num((p.get("rotation") or {}).get(key))
            if v is not None:
                rot[key].append(v)
        el = p.get("elastic") or {}
        try:
            arr = np.asarray(el.get("displacement_mm", []), dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros(0)
        if arr.ndim == 4 and arr.shape[3] == 3:
            comp.append(float(np.abs(arr).max()) if arr.size else 0.0)
            length.append(float(np.linalg.norm(arr, axis=-1).max()) if arr.size else 0.0)
        for target, key in ((jmin, "min_jacobian"), (jmax, "max_jacobian")):
            v = _num(r.get(key))
            if v is not None:
                target.append(v)
        inten = p.get("intensity") or {}
        for target, key in ((shift, "shift"), (scale, "scale")):
            v = _num(inten.get(key))
            if v is not None:
                target.append(v)
    r_spec = None if spec is None else spec.rotation
    e_spec = None if spec is None else spec.elastic
    i_spec = None if spec is None else spec.intensity

    def pm(value: float | None, name: str) -> list[tuple[float, str]]:
        return [] if value is None else [(value, f"+{name}"), (-value, f"-{name}")]

    plots = [
        plot_figure(
            "Rotation angle (in plane)",
            [Series("degrees", rot["degrees"], "#1f77b4")],
            bounds=pm(None if r_spec is None else float(r_spec.max_degrees), "max_degrees"),
            unit="degrees",
        ),
        plot_figure(
            "Tilt angles",
            [
                Series("about row", rot["tilt_row_degrees"], "#1f77b4"),
                Series("about column", rot["tilt_column_degrees"], "#ff7f0e"),
            ],
            bounds=pm(None if r_spec is None else float(r_spec.max_tilt_degrees), "max_tilt"),
            unit="degrees",
        ),
        plot_figure(
            "Elastic: largest control-point displacement",
            [Series("largest component", comp, "#1f77b4"), Series("largest vector length", length, "#2ca02c")],
            bounds=[]
            if e_spec is None
            else [
                (float(e_spec.max_displacement_mm), "max_displacement_mm"),
                (float(e_spec.max_displacement_mm) * 3**0.5, "√3 × max (length)"),
            ],
            unit="mm",
        ),
        plot_figure(
            "Jacobian determinant (must stay > 0)",
            [Series("minimum", jmin, "#1f77b4"), Series("maximum", jmax, "#9467bd")],
            bounds=[(0.0, "0 = folding")],
            unit="determinant",
        ),
        plot_figure(
            "Intensity shift",
            [Series("shift", shift if i_spec is None or i_spec.max_shift else [], "#1f77b4")],
            bounds=pm(None if i_spec is None else float(i_spec.max_shift), "max_shift"),
            unit="modality units (HU for CT)",
        ),
        plot_figure(
            "Intensity scale",
            [Series("scale", scale if i_spec is None or i_spec.max_scale else [], "#1f77b4")],
            bounds=pm(None if i_spec is None else float(i_spec.max_scale), "max_scale"),
            unit="relative gain",
        ),
    ]
    return plots


def _rescale(ds: pydicom.Dataset, frame: int) -> tuple[float, float]:
    """Rescale Slope and Intercept: top level, or an enhanced object's functional groups."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) > frame:
        groups.append(per_frame[frame])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        seq = group.get("PixelValueTransformationSequence")
        if seq:
            return float(seq[0].get("RescaleSlope", 1) or 1), float(seq[0].get("RescaleIntercept", 0) or 0)
    return 1.0, 0.0


def _middle_slice(paths: list[Path]) -> tuple[NDArray[np.uint8], str] | None:
    """The middle slice of an output series as uint8 (by position along the normal), and its modality."""
    heads = []
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        iop = [float(v) for v in ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
        ipp = [float(v) for v in ds.get("ImagePositionPatient", [0, 0, 0])]
        normal = np.cross(iop[:3], iop[3:])
        heads.append((float(np.dot(normal, ipp)), path))
    heads.sort(key=lambda t: t[0])
    ds = pydicom.dcmread(heads[len(heads) // 2][1])
    pixels = np.asarray(ds.pixel_array)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    colour = int(ds.get("SamplesPerPixel", 1)) > 1
    if frames > 1:
        pixels = pixels[frames // 2]
    modality = str(ds.get("Modality", ""))
    if colour:
        return np.asarray(pixels, dtype=np.uint8), modality
    slope, intercept = _rescale(ds, frames // 2)
    values = pixels.astype(np.float64) * slope + intercept
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        values = values.max() + values.min() - values
    return to_uint8(values, display_window(values, modality=modality)), modality


def thumbnails(outdir: Path, records: list[dict[str, Any]], *, limit: int = MAX_THUMBNAILS) -> list[str]:
    """``<figure>`` elements of the middle slices of a sample of variant series (outputs only)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    variant_of: dict[str, int] = {}
    for r in records:
        if rec.is_type(r, rec.Output) and isinstance(r.get("path"), str) and layout.label_number(r["path"]) is None:
            folder = layout.series_folder_of(r["path"])
            groups[folder].append(outdir / r["path"])
            variant_of[folder] = int(r.get("variant", 0) or 0)
    chosen = sorted(f for f in groups if variant_of[f] >= 1) or sorted(groups)
    # Spread the sample over the dataset rather than taking the first few folders.
    if len(chosen) > limit:
        chosen = [chosen[i * len(chosen) // limit] for i in range(limit)]
    figures = []
    for folder in chosen:
        try:
            got = _middle_slice([p for p in groups[folder] if p.is_file()])
        except (OSError, ValueError, AttributeError, IndexError, TypeError, RuntimeError):
            got = None
        if got is None:
            continue
        pixels, modality = got
        data = base64.b64encode(grey_png(pixels)).decode("ascii")
        figures.append(
            f'<figure><img alt="middle slice" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(modality)} · variant {variant_of[folder]} · {len(groups[folder])} file(s)<br>"
            f"<code>{_esc(folder.split('/')[-1])}</code></figcaption></figure>"
        )
    return figures


def _label_on_grid(folder: Path, label: Path) -> tuple[NDArray[Any], NDArray[np.bool_], str, float]:
    """An output series' volume and one of its label objects rasterised on its grid (read as ingest reads).

    Returns the volume (modality units), the ``(nseg, k, j, i)`` masks, the modality and the
    pixel aspect (row over column spacing).
    """
    from medaug.ingest import load_series, scan_archive
    from medaug.ingest.labels import label_maps

    (ref,) = scan_archive(folder).series
    image = load_series(ref).image
    uids = tuple(str(h.SOPInstanceUID) for h in image.headers)
    masks = label_maps(label, image.geometry, instance_uids=uids).data > 0.5
    g = image.geometry
    return image.data, masks, image.modality, float(g.spacing[1] / g.spacing[2])


def label_outlines(outdir: Path, records: list[dict[str, Any]], *, limit: int = MAX_LABEL_FIGURES) -> list[str]:
    """``<figure>`` elements: a labelled variant's slice with its segments' outlines, beside the same
    slice of its de-identified original with the original's label (outputs only).

    The slice is the variant's where its label covers the most voxels.
    """
    image_folder: dict[str, str] = {}  # output series UID -> folder
    variant_of: dict[str, int] = {}  # folder -> variant
    label_files: dict[str, list[str]] = defaultdict(list)  # folder -> label outputs, in name order
    for _, output in rec.of_type(records, rec.Output):
        folder = layout.series_folder_of(output.path)
        if layout.label_number(output.path) is None:
            image_folder.setdefault(str(output.series), folder)
            variant_of[folder] = int(output.variant)
        else:
            label_files[folder].append(output.path)
    original_of = {str(v.variant_series): str(v.series) for _, v in rec.of_type(records, rec.VariantDerive)}
    chosen = sorted(f for f in label_files if variant_of.get(f, 0) >= 1)[:limit]
    figures = []
    for folder in chosen:
        variant_series = next((uid for uid, f in image_folder.items() if f == folder), "")
        original = image_folder.get(original_of.get(variant_series, ""))
        label = sorted(label_files[folder], key=lambda p: layout.label_number(p) or 0)[0]
        name = label.rsplit("/", 1)[-1]
        try:
            data, masks, modality, aspect = _label_on_grid(outdir / folder, outdir / label)
            k = int(np.argmax(masks.reshape(len(masks), masks.shape[1], -1).sum(axis=(0, 2))))
            window = display_window(data[k], modality=modality)
            panels = [(f"variant {variant_of[folder]}", to_uint8(data[k], window), masks[:, k])]
            if original is not None and f"{original}/{name}" in label_files.get(original, []):
                data0, masks0, _, _ = _label_on_grid(outdir / original, outdir / original / name)
                panels.insert(0, ("variant 0 (de-identified original)", to_uint8(data0[k], window), masks0[:, k]))
        except (OSError, ValueError, AttributeError, IndexError, TypeError, RuntimeError, MedaugError):
            continue
        png = base64.b64encode(outlined_slices_png(panels, aspect=aspect)).decode("ascii")
        figures.append(
            f'<figure class="outline"><img alt="label outline" src="data:image/png;base64,{png}">'
            f"<figcaption>{_esc(modality)} · slice {k + 1} of {len(data)} · <code>{_esc(name)}</code> "
            f"({len(masks)} segment(s))<br><code>{_esc(folder.split('/')[-1])}</code></figcaption></figure>"
        )
    return figures


def _signature_status(outdir: Path, result: VerifyResult) -> str:
    """Whether the log's head is signed, and whether the signature was checked."""
    if "signature" in result.checked:
        return "checked with the given public key: " + ("FAIL" if result.failed("signature") else "valid")
    if layout.signature_path(outdir).exists():
        return "present, not checked (write the report with --public-key to check it)"
    return "none (the dataset is not signed)"


def build_report(outdir: Path, result: VerifyResult) -> str:
    """The report page of ``outdir`` as an HTML string (``result`` from :func:`verify_dataset`)."""
    records, manifest = _load(outdir)
    start, end = _first(records, rec.RunStart), _first(records, rec.RunEnd)
    counts = end.get("counts") or manifest.get("counts") or {}
    policy = start.get("policy") or {}
    approval = start.get("approval") or {}
    quarantined = counts.get("quarantined") or {}
    sections = [f"<h1>medaug dataset report</h1><p>Dataset format {_esc(manifest.get('format', start.get('format', '?')))}"
                f", written by medaug {_esc(manifest.get('medaug', '?'))}.</p>"]

    badge = '<span class="pass">PASS</span>' if result.ok else '<span class="fail">FAIL</span>'
    checks = [(c, "fail" if result.failed(c) else "pass") for c in result.checked]
    problems = "".join(f"<li>{_esc(p)}</li>" for p in result.problems) or "<li>none</li>"
    sections.append(
        f"<h2>Verification {badge}</h2><p>{_esc(result.records)} log records, {_esc(result.files)} files under "
        f"<code>{_esc(layout.LAYOUT.images)}/</code>; log head <code>{_esc(result.head)}</code>.</p>"
        + _table(checks, ["check", "result"])
        + f"<p>Signature: {_esc(_signature_status(outdir, result))}.</p>"
        + f"<p>Problems:</p><ul>{problems}</ul>"
    )

    summary = [
        ("input files", counts.get("inputs", "?")),
        ("series", counts.get("series", "?")),
        ("files written", counts.get("files_written", "?")),
        ("files quarantined", sum(v for v in quarantined.values() if isinstance(v, int))),
        ("index files (DICOMDIR)", counts.get("indexes", "?")),
        ("derive records (v0 = de-identified original included)", sum(1 for r in records if rec.is_type(r, rec.VariantDerive))),
        ("log records", len(records)),
    ]
    sections.append("<h2>Dataset summary</h2>" + _table(summary, ["what", "count"]))

    match = bool(policy.get("sha256")) and policy.get("sha256") == approval.get("content_sha256")
    sections.append(
        "<h2>Policy and approval</h2>"
        + _table(
            [
                ("policy id", policy.get("id", "?")),
                ("version", policy.get("version", "?")),
                ("content SHA-256", policy.get("sha256", "?")),
                ("approved by", approval.get("approved_by", "?")),
                ("approved at", approval.get("approved_at", "?")),
                ("approval binds this content", "yes" if match else "NO"),
                ("approved with medaug", approval.get("medaug_version", "?")),
            ]
        )
        + f"<pre>{_esc(json.dumps(policy.get('content', {}), indent=2, sort_keys=True, ensure_ascii=False))}</pre>"
    )

    by_modality: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    for r in records:
        if rec.is_type(r, rec.SeriesRecord):
            by_modality[str(r.get("modality", "?"))] += 1
            instances[str(r.get("modality", "?"))] += int(r.get("instances", 0) or 0)
    reasons = Counter(str(r.get("reason", "?")) for r in records if rec.is_type(r, rec.Quarantine))
    sections.append(
        "<h2>Series by modality</h2>"
        + _table([(m, by_modality[m], instances[m]) for m in sorted(by_modality)], ["modality", "series", "instances"])
        + "<h2>Quarantined inputs by reason</h2>"
        + _table(
            [(k, reasons.get(k, 0), quarantined.get(k, 0)) for k in sorted(set(reasons) | set(quarantined))],
            ["reason", "quarantine records", "run_end count"],
        )
    )

    unapplied: Counter[str] = Counter()
    for r in records:
        if rec.is_type(r, rec.VariantDerive) and isinstance(r.get("not_applied"), list):
            unapplied.update(str(code) for code in r["not_applied"])
    sections.append(
        "<h2>Transforms not applied</h2><p>Variants in which a transform the policy allows could not act "
        "(an uneven stack is never resampled; an elastic grid locked by a short extent moves nothing).</p>"
        + (_table(sorted(unapplied.items()), ["reason", "variants"]) if unapplied else "<p>none</p>")
    )
    sections.append(
        "<h2>Realised parameters against the policy's bounds</h2>"
        "<p>One point per variant in log order; dashed red lines, labelled at the right, are the bounds "
        "recorded at run start; a point beyond a bound is drawn as a red cross.</p>"
        f'<div class="plots">{"".join(parameter_plots(records, _spec(start)))}</div>'
    )
    thumbs = thumbnails(outdir, records)
    sections.append(
        "<h2>Sample of generated images</h2><p>Middle slice of a sample of variant series, read from the "
        "output files.</p>" + (f'<div class="thumbs">{"".join(thumbs)}</div>' if thumbs else "<p>none</p>")
    )
    outlines = label_outlines(outdir, records)
    sections.append(
        "<h2>Labels on their variants</h2><p>A slice of a labelled variant with the outline of each "
        "segment of its label object, beside the same slice of the de-identified original with its own; "
        "both read from the output files.</p>"
        + (f'<div class="thumbs">{"".join(outlines)}</div>' if outlines else "<p>none</p>")
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>medaug dataset report</title>'
        f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )


def write_report(outdir: Path, out: Path, *, public_key: Path | None = None) -> bool:
    """Verify ``outdir``, write its report to ``out`` (atomically) and return whether it verified.

    Parameters
    ----------
    outdir : Path
        Dataset written by ``medaug run``.
    out : Path
        HTML file to write.

    Returns
    -------
    bool
        True when every verification check passed.
    """
    result = verify_dataset(Path(outdir), public_key=public_key)
    page = build_report(Path(outdir), result).encode("utf-8")
    write_atomic(Path(out), lambda f: f.write(page))
    return result.ok


__all__ = [
    "MAX_LABEL_FIGURES",
    "MAX_THUMBNAILS",
    "PLOT_SIZE",
    "Series",
    "build_report",
    "label_outlines",
    "parameter_plots",
    "plot_figure",
    "plot_png",
    "thumbnails",
    "write_report",
]
