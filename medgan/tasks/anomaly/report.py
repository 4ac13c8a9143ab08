"""The anomaly task's part of the run report: the calibration and whether its promise held,
the latest evaluation against lesions beside the intensity rule's on the same images, and
the heat-map picture."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from medgan.io.records import read_jsonl
from medgan.report.html import img_tag

__all__ = ["anomaly_section"]

#: evaluation figures shown, in order, with their labels.
SHOWN = (("fpr_at_alpha", "false-positive rate on other normals"), ("auroc", "image AUROC"), ("auprc", "image AUPRC"),
         ("sensitivity", "sensitivity at 95% specificity"), ("sensitivity_at_alpha", "sensitivity at the calibrated threshold"),
         ("pixel_auroc", "pixel AUROC"), ("pixel_auprc", "pixel AUPRC"), ("best_dice", "best Dice"),
         ("dice_at_threshold", "Dice at the calibrated pixel threshold"), ("pixel_fpr_at_alpha", "normal body pixels flagged"))


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def _calibration_rows(record: dict) -> str:
    rows = []
    for level, entry in record.get("levels", {}).items():
        if "error" in entry:
            rows.append(f"<tr><td>{level}</td><td colspan=3>not calibrated: {html.escape(entry['error'])}</td></tr>")
            continue
        check = entry.get("check") or {}
        if level == "pixel":
            reached = "–" if check.get("rate") is None else f"{check['rate']:.1%} of {check['n']} body pixels"
        elif check:
            verdict = "holds" if check.get("holds") else "<b>does not hold</b>"
            reached = (f"{check['false_positives']} of {check['n']} ({check['rate']:.1%}, 95% CI {check['ci95'][0]:.1%}–"
                       f"{check['ci95'][1]:.1%}): {verdict}")
        else:
            reached = "no normals left to check on"
        rows.append(f"<tr><td>{level}</td><td>{entry['threshold']:.4g} at alpha {entry['alpha']:g}</td><td>{entry['n']}</td>"
                    f"<td>{reached}</td></tr>")
    return "".join(rows)


def _kind_table(by_kind: dict, method: str) -> str:
    """Each lesion kind alone against the same normals, the model beside the rule: which
    lesions each one sees (a texture or a mass effect leaves the tissue's mean as it was)."""
    if not by_kind:
        return ""
    m = html.escape(method)
    rows = "".join(f"<tr><td>{html.escape(kind)}</td><td>{f['n']}</td><td>{_fmt(f.get('auroc'))}</td><td>{_fmt(f.get('rule_auroc'))}</td>"
                   f"<td>{_fmt(f.get('pixel_auprc'))}</td><td>{_fmt(f.get('rule_pixel_auprc'))}</td></tr>" for kind, f in by_kind.items())
    return ("<table><tr><th>lesion kind</th><th>images</th>"
            f"<th>image AUROC, {m}</th><th>image AUROC, rule</th><th>pixel AUPRC, {m}</th><th>pixel AUPRC, rule</th></tr>{rows}</table>")


def anomaly_section(run: Path) -> list[str]:
    """Calibration table, latest evaluation and heat maps (what exists of them)."""
    from medgan.tasks.anomaly.evaluate import PICTURE
    from medgan.tasks.anomaly.model import CALIBRATION

    parts: list[str] = []
    file = run / CALIBRATION
    if file.is_file():
        record = json.loads(file.read_text())
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in record.get("notes", []))
        parts.append("<h2>Calibration</h2><table><tr><th>level</th><th>threshold</th><th>calibration normals</th>"
                     f"<th>flagged among other held-out normals</th></tr>{_calibration_rows(record)}</table>"
                     f"<p>Calibrated on {html.escape(str(record.get('normals')))} ({record['n_calibration_volumes']} volumes, "
                     f"{record['n_calibration_images']} images); checked on {record['n_check_volumes']} other volumes "
                     f"({record['n_check_images']} images). Conformal p-value (1 + #calibration &ge; s) / (n + 1); "
                     "flagged when the score is above the threshold.</p>" + (f"<ul>{notes}</ul>" if notes else ""))
    records = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "evaluate" and r.get("task") == "anomaly"]
    if records:
        r = records[-1]
        base = r.get("baseline")  # the z-score rule fitted on the run's training images, scored on the same images
        rule = base["metrics"] if base else {}
        head = f"<th>{html.escape(r.get('method', 'model'))}</th>" + ("<th>intensity rule (z-score)</th>" if base else "")
        rows = "".join(f"<tr><td>{label}</td><td>{_fmt(r['metrics'].get(key))}</td>" + (f"<td>{_fmt(rule.get(key))}</td>" if base else "")
                       + "</tr>" for key, label in SHOWN if key in r["metrics"])
        said = (f"<p><b>The model {html.escape(base['verdict'])}</b> (the rule: each pixel's z-score against "
                f"{html.escape(base['fitted_on'])}, on the same held-out images; uncalibrated, so its rates are left blank).</p>"
                if base else "")
        parts.append(f"<h2>Detection</h2><table><tr><th>figure</th>{head}</tr>{rows}</table>{said}"
                     f"<p>{r['n_normal']} held-out normal images not used to calibrate; {r['n_anomalous']} images with "
                     f"{html.escape(r['settings']['anomalous'])}.</p>" + _kind_table(r.get("by_kind") or {}, r.get("method", "model")))
    if (run / PICTURE).is_file():
        parts.append("<h2>Heat maps</h2>" + f"<figure>{img_tag(run / PICTURE, 'anomaly heat maps')}"
                     "<figcaption>image | reconstruction of a normal image | map (fixed scale) | truth; rows: the highest- and "
                     "lowest-scoring images with lesions, then the highest-scoring normals</figcaption></figure>")
    return parts
