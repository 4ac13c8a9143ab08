"""One self-contained HTML report per run, drawn only from the run folder's files.

Pictures are embedded as base64 PNG, styles are inline, there is no script and no link to
the network: the file opens in any browser, offline, and can be sent as one attachment.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from medgan import __version__
from medgan.errors import MedganError
from medgan.io.output import atomic_path
from medgan.io.records import read_jsonl
from medgan.tasks import TASKS

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; image-rendering: pixelated; } figure { display: inline-block; margin: .4em; vertical-align: top; }
figcaption { font-size: .85em; color: #555; text-align: center; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.flag { color: #b00; font-weight: bold; } .ok { color: #070; font-weight: bold; } .note { color: #555; font-size: .9em; }
"""

# What each metric means, shown beside it (lower/higher is better).
METRIC_NOTES = {
    "fid": "Fréchet Inception distance (lower is better)",
    "kid_mean": "kernel Inception distance, unbiased, mean over subsets (lower is better)",
    "kid_std": "std of KID over subsets",
    "swd": "sliced Wasserstein distance on Laplacian pyramid patches, ×1e3 (lower is better)",
    "ms_ssim_diversity_generated": "mean MS-SSIM of random generated pairs (near 1 = mode collapse)",
    "ms_ssim_diversity_real": "the same for real pairs (the reference value)",
}
for _space in ("inception", "pixel"):
    METRIC_NOTES.update({
        f"{_space}_precision": f"share of generated images inside the real manifold ({_space} features; higher is better)",
        f"{_space}_recall": f"share of real images covered by the generated manifold ({_space} features; higher is better)",
        f"{_space}_density": f"how densely generated images sit among real neighbours ({_space}; ~1 for matching sets)",
        f"{_space}_coverage": f"share of real images with a generated image among their neighbours ({_space}; higher is better)",
    })
# Enhancement runs score the degraded input (or bicubic upsampling) and the model alike.
for _who, _what in (("input", "the degraded input (bicubic for super-resolution)"), ("model", "the model's output")):
    METRIC_NOTES.update({
        f"{_who}_psnr": f"PSNR of {_what} against the held-out clean images, dB on the data's range (higher is better)",
        f"{_who}_ssim": f"SSIM of {_what} (higher is better)",
        f"{_who}_mae": f"mean absolute error of {_what}, in the data's units (lower is better)",
        f"{_who}_rmse": f"root mean squared error of {_what}, in the data's units (lower is better)",
        f"{_who}_hf_energy_ratio": f"fine-detail energy of {_what} over the truth's (1 = as sharp; < 1 smooth; > 1 noisy)",
        f"{_who}_spectrum_error_db": f"power-spectrum mismatch of {_what} at high frequencies, dB (0 = the truth's texture)",
        f"{_who}_spectrum_bias_db": "its sign: < 0 smoother than the truth, > 0 noisier",
    })


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def table(rows: list[tuple], header: tuple | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append(f'<td class="num">{v:.4g}</td>')
            else:
                cells.append(f"<td>{v if str(v).startswith('<span') else html.escape(str(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def build_report(run_dir: str | Path, out: str | Path | None = None, max_grids: int = 6) -> Path:
    """Write ``report.html`` for a run folder and return its path.

    Raises:
        MedganError: ``run_dir`` is not a run folder.
    """
    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise MedganError("not a run folder (no config.json)", path=run, hint="give a folder made by medgan train")
    config = json.loads((run / "config.json").read_text())
    stats = [r for r in read_jsonl(run / "stats.jsonl") if any(k.startswith("loss_") for k in r)]
    records = read_jsonl(run / "metrics.jsonl")
    parts = [f"<h1>medgan run: {html.escape(run.name)}</h1>",
             f'<p class="note">task <b>{html.escape(config["task"])}</b>, model <b>{html.escape(config["model"]["name"])}</b>, '
             f'data <b>{html.escape(str(config["data"]["source"]))}</b>, {len(stats) and stats[-1]["step"]} steps '
             f'of batch {config["loop"]["batch_size"]}; report by medgan {__version__}.</p>']

    # Training: data, curves, samples over time
    parts.append("<h2>Training</h2>")
    if (run / "data-samples.png").is_file():
        parts.append(f'<figure>{img_tag(run / "data-samples.png", "training data")}<figcaption>the data source (training and held-out patients; masks on the right, if any)</figcaption></figure>')
    if (run / "curves.png").is_file():
        parts.append(f'<figure>{img_tag(run / "curves.png", "loss curves")}<figcaption>losses and D outputs</figcaption></figure>')
    if stats:
        last = stats[-1]
        names = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "D(real)", "d_fake": "D(G(z))"}
        shown = [(names.get(k, k), v) for k, v in last.items() if k.startswith("loss_") or k in ("d_real", "d_fake")]
        parts.append(table([("step", last["step"]), *([("phase", last["phase"])] if "phase" in last else []), *shown,
                             ("images/s", last.get("img_per_sec", float("nan"))), ("elapsed s", last.get("elapsed", float("nan")))],
                            header=("last log", "value")))
    grids = sorted((run / "samples").glob("step-*.png")) if (run / "samples").is_dir() else []
    grids = grids[1:] if len(grids) > 1 else grids  # step 0: the untrained generator, a flat grey
    if grids:
        step = max(1, -(-len(grids) // max_grids))
        chosen = grids[::step][: max_grids - 1] + [grids[-1]] if len(grids) > 1 else grids
        title = TASKS[config["task"]].samples_caption(config) if config["task"] in TASKS else "Samples"
        parts.append(f"<h3>{html.escape(title)}</h3>")
        for g in dict.fromkeys(chosen):
            parts.append(f'<figure>{img_tag(g, g.stem)}<figcaption>{html.escape(g.stem)}</figcaption></figure>')

    # Metrics
    evaluations = [r for r in records if r.get("kind") == "evaluate"]
    task = TASKS.get(config["task"])
    parts.append("<h2>Metrics</h2>")
    if evaluations:
        latest = evaluations[-1]
        what = task.describe_evaluation(latest) if task is not None else ""
        parts.append(f'<p class="note">{html.escape(what)}, model step {latest.get("step")}, {html.escape(latest["time"])}.</p>')
        floor = latest.get("floor") or {}
        if floor:  # the real floor of each figure (synthesis: held-out patients vs training)
            parts.append(table([(k, v, floor.get(k, ""), METRIC_NOTES.get(k, "")) for k, v in latest["metrics"].items()],
                               header=("metric", "value", "real floor", "meaning")))
        else:
            parts.append(table([(k, v, METRIC_NOTES.get(k, "")) for k, v in latest["metrics"].items()], header=("metric", "value", "meaning")))
        if len(evaluations) > 1:
            keys = [k for k in ("kid_mean", "fid", "swd") if k in latest["metrics"]]
            parts.append("<h3>History</h3>" + table([(r["time"], r.get("step"), *[r["metrics"].get(k, "") for k in keys]) for r in evaluations if keys],
                                                       header=("time", "step", *keys)))
    else:
        parts.append('<p class="note">not evaluated yet: run <code>medgan evaluate RUN</code>.</p>')

    # The task's own sections (enhancement: side-by-side pictures; synthesis: the audit)
    if task is not None:
        parts += task.report_parts(run)

    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2)) + "</pre>")
    return _write(run, parts, out)


def _write(run: Path, parts: list[str], out: str | Path | None) -> Path:
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>medgan {html.escape(run.name)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    out = Path(out) if out else run / "report.html"
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
