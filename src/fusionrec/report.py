"""One self-contained HTML report of experiment runs: tables, and plots embedded as base64 PNG.

``build_report(records)`` takes the result records of :func:`fusionrec.experiment.load_results` (one per
model and seed) and groups them by model label: the metrics table (mean ± std over seeds), recall and NDCG
against K, metrics by user activity, training curves (loss and the validation metric per epoch), cold-item
results, the distribution of modality / sub-model weights in explanations, and the commands, versions and
data fingerprints behind every run. matplotlib draws with the Agg backend; nothing is fetched when the file
is opened.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec import __version__

_METRIC_RE = re.compile(r"^([a-z0-9_]+)@(\d+)$")


def build_report(records: list[dict[str, Any]], title: str = "fusionrec report") -> str:
    """The report as an HTML string (every image inline)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[str(r.get("label") or r.get("model"))].append(r)
    for runs in groups.values():
        runs.sort(key=lambda r: (r.get("seed") is None, r.get("seed")))
    labels = list(groups)
    metrics = _table_metrics(records)
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>{len(records)} run(s) of {len(labels)} model(s); written "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by fusionrec {__version__}.</p>",
        _section("Metrics (test)", _metrics_table(groups, metrics)),
    ]
    plots = [
        ("Recall against K", _curve_plot(groups, "recall")),
        ("NDCG against K", _curve_plot(groups, "ndcg")),
        ("By user activity (training interactions)", _activity_plot(groups, metrics)),
        ("Training curves", _training_plot(groups)),
        ("Cold items", _cold_plot(groups)),
        ("Modality / sub-model weights in explanations", _weights_plot(groups)),
    ]
    for heading, png in plots:
        if png is not None:
            sections.append(
                _section(heading, f"<img class='plot' alt='{_e(heading)}' src='data:image/png;base64,{png}'>")
            )
    tuning = _tuning_table(groups)
    if tuning:
        sections.append(_section("Hyper-parameter search (validation split)", tuning))
    cold = _cold_table(groups)
    if cold:
        sections.append(_section("Cold items (table)", cold))
    sections.append(_section("Provenance", _provenance(groups)))
    body = "\n".join(sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1100px; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #d0d7de; padding: 0.25rem 0.55rem; text-align: right; }}
th:first-child, td:first-child, td.text {{ text-align: left; }}
th {{ background: #f6f8fa; }}
td.best {{ font-weight: bold; }}
img.plot {{ max-width: 100%; border: 1px solid #eee; }}
.muted {{ color: #6a737d; }}
code {{ font-size: 0.8rem; word-break: break-all; }}
</style></head><body>
{body}
</body></html>
"""


# ------------------------------------------------------------------ tables


def _table_metrics(records: list[dict[str, Any]]) -> list[str]:
    """Metrics every table row shows: those the experiment asked for, in its order, else all of them."""
    asked = [m for m in (records[0].get("table_metrics") or []) if m]
    if asked:
        return asked
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r.get("metrics") or {}))
    return sorted(names, key=_metric_key)


def _metric_key(name: str) -> tuple[str, int]:
    m = _METRIC_RE.match(name)
    return (m.group(1), int(m.group(2))) if m else (name, 0)


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std()) if len(a) > 1 else 0.0


def _metrics_table(groups: dict[str, list[dict[str, Any]]], metrics: list[str]) -> str:
    means = {
        m: {
            lab: _stats([r["metrics"][m] for r in runs if m in r.get("metrics", {})])
            for lab, runs in groups.items()
            if any(m in r.get("metrics", {}) for r in runs)
        }
        for m in metrics
    }
    best = {m: max(v, key=lambda lab: v[lab][0]) for m, v in means.items() if v}
    head = "".join(f"<th>{_e(m)}</th>" for m in metrics)
    rows = []
    for lab, runs in groups.items():
        cells = []
        for m in metrics:
            if lab in means[m]:
                mu, sd = means[m][lab]
                cls = " class='best'" if best.get(m) == lab else ""
                cells.append(f"<td{cls} data-mean='{mu:.6f}' data-std='{sd:.6f}'>{mu:.4f} ± {sd:.4f}</td>")
            else:
                cells.append("<td>—</td>")
        secs = [r["fit_seconds"] for r in runs if r.get("fit_seconds") is not None]
        fit = f"{np.mean(secs):.1f}" if secs else "—"
        model = _e(runs[0].get("model") or lab)
        rows.append(
            f"<tr><td>{_e(lab)}</td><td class='text'>{model}</td><td>{len(runs)}</td>"
            f"{''.join(cells)}<td>{fit}</td></tr>"
        )
    return (
        "<p class='muted'>mean ± standard deviation over seeds (population std); best mean in bold.</p>"
        f"<table id='metrics'><thead><tr><th>label</th><th>model</th><th>seeds</th>{head}<th>fit s</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _tuning_table(groups: dict[str, list[dict[str, Any]]]) -> str | None:
    rows = []
    for lab, runs in groups.items():
        for r in runs:
            t = r.get("tuning")
            if not t:
                continue
            chosen = ", ".join(f"{k}={v}" for k, v in t["chosen"].items())
            key = f"valid {t['metric']}"
            tried = "; ".join(
                ", ".join(f"{k}={v}" for k, v in row.items() if k not in (key, "fit_seconds"))
                + f": {row[key]:.4f}"
                for row in t["valid"]
            )
            rows.append(
                f"<tr><td>{_e(lab)}</td><td>{_e(r.get('seed'))}</td><td class='text'>{_e(chosen)}</td>"
                f"<td class='text'>{_e(t['metric'])}</td><td class='text'>{_e(tried)}</td></tr>"
            )
    if not rows:
        return None
    return (
        "<table id='tuning'><thead><tr><th>label</th><th>seed</th><th>chosen</th><th>by</th>"
        f"<th>points tried (valid)</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _cold_table(groups: dict[str, list[dict[str, Any]]]) -> str | None:
    rows = []
    for lab, runs in groups.items():
        colds = [r["cold"] for r in runs if r.get("cold")]
        if not colds:
            continue
        by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in colds:
            for row in c["rows"]:
                by_method[row["method"]].append(row)
        for method, got in by_method.items():
            cols = [k for k in got[0] if k != "method"]
            cells = "".join("<td>{:.4f} ± {:.4f}</td>".format(*_stats([g[c] for g in got])) for c in cols)
            rows.append(
                (
                    cols,
                    f"<tr><td>{_e(lab)}</td><td class='text'>{_e(method)}</td><td>{len(got)}</td>{cells}</tr>",
                )
            )
    if not rows:
        return None
    head = "".join(f"<th>{_e(c)}</th>" for c in rows[0][0])
    return (
        f"<table id='cold'><thead><tr><th>label</th><th>method</th><th>seeds</th>{head}</tr></thead>"
        f"<tbody>{''.join(r for _, r in rows)}</tbody></table>"
    )


def _provenance(groups: dict[str, list[dict[str, Any]]]) -> str:
    runs_all = [r for runs in groups.values() for r in runs]
    envs = list(
        dict.fromkeys(
            _e(", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items() if v)) for r in runs_all
        )
    )
    datas = list(dict.fromkeys(_e(_data_line(r.get("data") or {})) for r in runs_all))
    commands = list(dict.fromkeys(r.get("command") for r in runs_all if r.get("command")))
    rows = []
    for lab, runs in groups.items():
        for r in runs:
            data = r.get("data") or {}
            params = ", ".join(f"{k}={v}" for k, v in sorted((r.get("params") or {}).items()))
            rows.append(
                "<tr>"
                f"<td>{_e(lab)}</td><td>{_e(r.get('seed'))}</td>"
                f"<td class='text'><code>{_e(params)}</code></td>"
                f"<td class='text'><code>{_e(data.get('fingerprint'))}</code></td>"
                f"<td class='text'>{_e((r.get('split') or {}).get('method', '—'))}</td>"
                f"<td class='text'><code>{_e(r.get('command') or '—') if len(commands) > 1 else '(above)'}</code></td>"
                f"<td class='text'><code>{_e(r.get('run_dir'))}</code></td></tr>"
            )
    head = "".join(
        [
            "<p><b>Commands</b>: "
            + ("<br>".join(f"<code>{_e(c)}</code>" for c in commands) or "not recorded")
            + "</p>",
            "<p><b>Versions</b>: " + "<br>".join(envs) + "</p>",
            "<p><b>Data</b>: " + "<br>".join(datas) + "</p>",
        ]
    )
    return head + (
        "<table id='provenance'><thead><tr><th>label</th><th>seed</th><th>params</th>"
        "<th>data fingerprint</th><th>split</th><th>command</th><th>run</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _data_line(data: dict[str, Any]) -> str:
    summary = data.get("summary") or {}
    size = ", ".join(f"{k} {summary[k]}" for k in ("users", "items", "interactions") if k in summary)
    opts = ", ".join(
        f"{k}={v}"
        for k, v in data.items()
        if k not in ("name", "fingerprint", "summary", "path") and v not in (None, [], "")
    )
    where = data.get("path") or data.get("name")
    return f"{where} (fingerprint {data.get('fingerprint')}; {size}{'; ' + opts if opts else ''})"


# ------------------------------------------------------------------ plots


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 7.5, height: float = 4.0, ncols: int = 1):
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height), squeeze=False)


def _curve_plot(groups: dict[str, list[dict[str, Any]]], family: str) -> str | None:
    fig, axes = _figure()
    ax = axes[0, 0]
    drawn = False
    all_ks: set[int] = set()
    for lab, runs in groups.items():
        ks = sorted(
            {
                int(m.group(2))
                for r in runs
                for k in r.get("metrics", {})
                if (m := _METRIC_RE.match(k)) and m.group(1) == family
            }
        )
        ks = [k for k in ks if all(f"{family}@{k}" in r.get("metrics", {}) for r in runs)]
        if len(ks) < 2:
            continue
        vals = np.array([[r["metrics"][f"{family}@{k}"] for k in ks] for r in runs])
        mu, sd = vals.mean(axis=0), vals.std(axis=0)
        ax.plot(ks, mu, marker="o", label=lab)
        all_ks.update(ks)
        if len(runs) > 1:
            ax.fill_between(ks, mu - sd, mu + sd, alpha=0.2)
        drawn = True
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_xticks(sorted(all_ks), [str(k) for k in sorted(all_ks)])  # the K values themselves, not decades
    ax.minorticks_off()
    ax.set_xlabel("K")
    ax.set_ylabel(f"{family}@K")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _activity_plot(groups: dict[str, list[dict[str, Any]]], metrics: list[str]) -> str | None:
    runs_with = {lab: [r for r in runs if r.get("by_activity")] for lab, runs in groups.items()}
    runs_with = {lab: runs for lab, runs in runs_with.items() if runs}
    if not runs_with:
        return None
    buckets = list(dict.fromkeys(b for runs in runs_with.values() for r in runs for b in r["by_activity"]))
    first = next(iter(runs_with.values()))[0]["by_activity"][buckets[0]]
    shown = [m for m in ("recall@20", "ndcg@20", *metrics) if m in first][:2]
    if not shown:
        return None
    fig, axes = _figure(width=5.0 * len(shown), ncols=len(shown))
    width = 0.8 / len(runs_with)
    for ax, metric in zip(axes[0], shown, strict=True):
        x = np.arange(len(buckets))
        for j, (lab, runs) in enumerate(runs_with.items()):
            vals = np.array(
                [[r["by_activity"].get(b, {}).get(metric, np.nan) for b in buckets] for r in runs]
            )
            ax.bar(x + j * width, np.nanmean(vals, axis=0), width, yerr=np.nanstd(vals, axis=0), label=lab)
        users = [first_bucket_users(runs_with, b) for b in buckets]
        ax.set_xticks(x + width * (len(runs_with) - 1) / 2)
        ax.set_xticklabels([f"{b}\n({u} users)" for b, u in zip(buckets, users, strict=True)])
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0, -1].legend(
        fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )  # beside the bars, not on them
    return _png(fig)


def first_bucket_users(runs_with: dict[str, list[dict[str, Any]]], bucket: str) -> int:
    for runs in runs_with.values():
        for r in runs:
            if bucket in r["by_activity"]:
                return int(r["by_activity"][bucket].get("users", 0))
    return 0


def _training_plot(groups: dict[str, list[dict[str, Any]]]) -> str | None:
    curves = {lab: [r["history"] for r in runs if r.get("history")] for lab, runs in groups.items()}
    curves = {lab: h for lab, h in curves.items() if h}
    if not curves:
        return None
    fig, axes = _figure(width=11.0, ncols=2)
    loss_ax, valid_ax = axes[0]
    colors = _colors()
    metric_names = set()
    for (lab, hists), color in zip(curves.items(), colors, strict=False):
        for n, h in enumerate(hists):
            tag = lab if n == 0 else None
            loss_ax.plot(h["epoch"], h["loss"], color=color, alpha=0.8, label=tag)
            pts = [(e, v) for e, v in zip(h["epoch"], h["valid"], strict=True) if v is not None]
            if pts:
                e, v = zip(*pts, strict=True)
                valid_ax.plot(e, v, color=color, marker=".", alpha=0.8, label=tag)
                metric_names.add(h.get("metric", "valid"))
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss")
    valid_ax.set_xlabel("epoch")
    valid_ax.set_ylabel("valid " + "/".join(sorted(metric_names)) if metric_names else "valid metric")
    for ax in (loss_ax, valid_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def _cold_plot(groups: dict[str, list[dict[str, Any]]]) -> str | None:
    colds = {lab: [r["cold"] for r in runs if r.get("cold")] for lab, runs in groups.items()}
    colds = {lab: c for lab, c in colds.items() if c}
    if not colds:
        return None
    bars: dict[str, list[float]] = defaultdict(list)
    metric = None
    for lab, results in colds.items():
        for c in results:
            for row in c["rows"]:
                metric = metric or next(k for k in row if k != "method")
                name = f"{lab} + content" if row["method"].endswith("+ content") else row["method"]
                bars[name].append(row[metric])
    fig, axes = _figure(height=0.45 * len(bars) + 1.5)
    ax = axes[0, 0]
    names = list(bars)
    stats = [_stats(bars[n]) for n in names]
    ax.barh(names, [s[0] for s in stats], xerr=[s[1] for s in stats], color="#2f6f9f")
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} on held-out cold items")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _weights_plot(groups: dict[str, list[dict[str, Any]]]) -> str | None:
    found = {
        lab: [r["modality_weights"] for r in runs if r.get("modality_weights")]
        for lab, runs in groups.items()
    }
    found = {lab: w for lab, w in found.items() if w}
    if not found:
        return None
    fig, axes = _figure(width=max(5.0, 4.0 * len(found)), ncols=len(found))
    for ax, (lab, ws) in zip(axes[0], found.items(), strict=True):
        parts = ws[0]["parts"]
        data = [np.concatenate([np.asarray(w["shares"][p], dtype=np.float64) for w in ws]) for p in parts]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(parts) + 1))
        ax.set_xticklabels(parts, rotation=20)
        ax.axhline(0, color="#999", lw=0.8)
        kind = ws[0]["kind"]
        ax.set_title(f"{lab} ({kind})", fontsize=10)
        ax.set_ylabel("weight" if kind == "attention" else "share of |score|")
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _colors():
    import matplotlib.pyplot as plt

    return plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10


def _section(heading: str, content: str) -> str:
    return f"<section><h2>{_e(heading)}</h2>\n{content}\n</section>"


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def write_report(records: list[dict[str, Any]], out: str | Path, title: str = "fusionrec report") -> Path:
    """Build the report and write it atomically to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(build_report(records, title=title), encoding="utf-8")
    os.replace(tmp, out)
    return out
