"""Experiment files (`fusionrec run`), the HTML report (`fusionrec report`) and MLflow tracking."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from fusionrec.cli import main
from fusionrec.errors import ConfigError
from fusionrec.experiment import load_experiment, load_results, run_experiment
from fusionrec.report import write_report

REPO = Path(__file__).resolve().parents[1]

SMALL = """
name: small
data: {path: demo, kcore: 30}
split: {method: ratio}
seeds: [1, 2]
metrics: [recall@10, recall@20, ndcg@20]
curve_ks: [5, 10, 20]
models:
  - name: most-popular
  - name: bpr-torch
    label: bpr (2 epochs)
    params: {factors: 8, epochs: 2, learning_rate: 0.01}
"""


class ReportParser(HTMLParser):
    """Table cells by table id, and the embedded images."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> ReportParser:
    p = ReportParser()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _check_report(report: Path, records: list[dict], labels: list[str], metrics: list[str], min_plots: int):
    parsed = _parse(report)
    table = parsed.tables["metrics"]
    header, rows = table[0], table[1:]
    assert header[:3] == ["label", "model", "seeds"] and header[3 : 3 + len(metrics)] == metrics
    assert [r[0] for r in rows] == labels
    for row in rows:
        runs = [r for r in records if r["label"] == row[0]]
        assert row[2] == str(len(runs))
        for j, m in enumerate(metrics):
            vals = np.array([r["metrics"][m] for r in runs])
            assert row[3 + j] == f"{vals.mean():.4f} ± {vals.std():.4f}", (row[0], m)
    pngs = [s for s in parsed.images if s.startswith("data:image/png;base64,")]
    assert len(pngs) >= min_plots and len(pngs) == len(parsed.images)  # nothing loaded from elsewhere
    for src in pngs:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in report.read_text() and "https://" not in report.read_text()
    return parsed


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    (root / "small.yaml").write_text(SMALL)
    exp = load_experiment(root / "small.yaml")
    records = run_experiment(
        exp, root / "out", show_progress=False, command=["fusionrec", "run", "small.yaml"]
    )
    return exp, records, root / "out"


def test_every_model_and_seed_is_one_run_directory(small_runs):
    exp, records, out = small_runs
    assert [(r["label"], r["seed"]) for r in records] == [
        ("most-popular", 1),
        ("bpr (2 epochs)", 1),
        ("most-popular", 2),
        ("bpr (2 epochs)", 2),
    ]
    dirs = sorted(p.parent for p in out.rglob("result.json"))
    assert len(dirs) == 4 and all((d / "artifact" / "model.json").exists() for d in dirs)
    bpr = json.loads((out / "runs" / "bpr_2_epochs" / "seed-2" / "artifact" / "model.json").read_text())
    assert bpr["command"] == "fusionrec run small.yaml" and bpr["params"]["random_state"] == 2
    assert bpr["state"]["history_"]["epoch"] == [1, 2] and len(bpr["state"]["history_"]["loss"]) == 2
    rec = json.loads((out / "runs" / "bpr_2_epochs" / "seed-2" / "result.json").read_text())
    assert rec["metrics"] == bpr["test_metrics"] and {"recall@5", "ndcg@10"} <= set(rec["metrics"])
    assert (
        rec["data"]["fingerprint"] == bpr["data_fingerprint"] and rec["versions"]["numpy"] == np.__version__
    )
    # different seeds give different splits, hence different numbers
    assert records[0]["metrics"] != records[2]["metrics"]


def test_report_has_the_table_and_embedded_plots(small_runs, tmp_path):
    exp, records, out = small_runs
    report = write_report(load_results([out]), tmp_path / "report.html")
    parsed = _check_report(report, records, ["most-popular", "bpr (2 epochs)"], exp.metrics, min_plots=4)
    prov = parsed.tables["provenance"]
    assert len(prov) == 1 + 4 and "fusionrec run small.yaml" in report.read_text()
    # a report also reads plain artifacts written by `fusionrec fit`
    art_only = write_report(
        load_results([out / "runs" / "most-popular" / "seed-1" / "artifact"]), tmp_path / "a.html"
    )
    assert _parse(art_only).tables["metrics"][1][0] == "most-popular"


def test_mlflow_run_is_readable_with_mlflows_own_client(small_runs, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from fusionrec.tracking import MlflowTracker

    monkeypatch.chdir(tmp_path)
    # MLflow 3 refuses a file store unless allowed; the tracker allows it itself (restored after the test)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    exp, records, out = small_runs
    tracker = MlflowTracker(None, "small")  # the default ./mlruns file store
    rec = records[3]
    run_id = tracker.log_run(rec, Path(rec["run_dir"]))
    assert (tmp_path / "mlruns").is_dir()
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run = client.get_run(run_id)
    assert run.info.experiment_id == client.get_experiment_by_name("small").experiment_id
    assert run.data.params["model"] == "bpr-torch" and run.data.params["param.factors"] == "8"
    assert run.data.params["seed"] == "2"
    assert run.data.metrics["recall_at_20"] == pytest.approx(rec["metrics"]["recall@20"])
    losses = client.get_metric_history(run_id, "train_loss")
    assert [m.step for m in sorted(losses, key=lambda m: m.step)] == [1, 2]
    assert [m.value for m in sorted(losses, key=lambda m: m.step)] == pytest.approx(rec["history"]["loss"])
    valid = client.get_metric_history(run_id, "valid_recall_at_20")
    assert len(valid) == 2
    assert "artifact/model.json" in [a.path for a in client.list_artifacts(run_id, "artifact")]
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ndata: demo\nmodels: [als]\nseed: [1]\n", "unknown key(s) ['seed']"),
        ("data: demo\nmodels: [{name: als, params: {factorz: 3}}]\n", "factorz"),
        ("data: demo\nmodels: [nope]\n", "nope"),
        ("data: demo\nmodels: [als]\nmetrics: [recall@x]\n", "recall@x"),
        ("data: demo\nmodels: [als]\nseeds: [1, two]\n", "seeds"),
        ("data: demo\nmodels: [als, als]\n", "labelled"),
        ("data: demo\nmodels: [als]\ncold: {models: [ease]}\n", "ease"),
        ("models: [als]\n", "data"),
        ("data: !!python/object/apply:os.system ['true']\nmodels: [als]\n", "not valid YAML"),
    ],
)
def test_bad_experiment_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_experiment(path)
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "o")]) == 2


@pytest.mark.slow
def test_repo_demo_experiment_end_to_end(tmp_path, capsys):
    # experiments/demo.yaml through the CLI, with MLflow: 4 models × 2 seeds, cold items, attention weights
    out, mlruns = tmp_path / "out", tmp_path / "mlruns"
    code = main(
        [
            "run",
            str(REPO / "experiments" / "demo.yaml"),
            "--out",
            str(out),
            "--quiet",
            "--mlflow",
            str(mlruns),
            "--json",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["runs"] == 8 and len(payload["mlflow"]["runs"]) == 8
    records = load_results([out])
    exp = load_experiment(REPO / "experiments" / "demo.yaml")
    parsed = _check_report(
        out / "report.html", records, [m.label for m in exp.models], exp.metrics, min_plots=6
    )
    assert len(parsed.tables["cold"]) > 2
    assert main(["report", str(out / "runs"), "--out", str(tmp_path / "again.html"), "--quiet"]) == 0
    assert _parse(tmp_path / "again.html").tables["metrics"] == parsed.tables["metrics"]
    als = next(r for r in records if r["label"] == "als")
    assert (
        als["metrics"]["recall@20"]
        > 2 * next(r for r in records if r["label"] == "most-popular")["metrics"]["recall@20"]
    )


def test_fit_records_its_command_line_in_the_artifact(tmp_path):
    args = ["fit", "--data", "demo", "--kcore", "30", "--model", "most-popular", "--out", str(tmp_path / "a")]
    assert main([*args, "--quiet", "--no-eval"]) == 0
    meta = json.loads((tmp_path / "a" / "model.json").read_text())
    assert meta["command"] == "fusionrec " + " ".join([*args, "--quiet", "--no-eval"])
    assert "item_images" not in meta  # per-item lists stay out of model.json


def test_a_models_grid_is_searched_on_valid_and_the_best_point_tested(tmp_path):
    (tmp_path / "grid.yaml").write_text(
        "data: {path: demo, kcore: 30}\nseeds: [3]\nselect: ndcg@10\nmetrics: [ndcg@10]\n"
        "models:\n  - {name: userknn, params: {similarity: cosine}, grid: {neighbors: [1, 40]}}\n"
    )
    exp = load_experiment(tmp_path / "grid.yaml")
    (rec,) = run_experiment(exp, tmp_path / "out", show_progress=False)
    tuning = rec["tuning"]
    assert [r["neighbors"] for r in tuning["valid"]] == [1, 40] and tuning["metric"] == "ndcg@10"
    best = max(tuning["valid"], key=lambda r: r["valid ndcg@10"])
    assert (
        tuning["chosen"] == {"neighbors": best["neighbors"]}
        and rec["params"]["neighbors"] == best["neighbors"]
    )
    assert tuning["valid"][0]["valid ndcg@10"] != tuning["valid"][1]["valid ndcg@10"]
    meta = json.loads((Path(rec["run_dir"]) / "artifact" / "model.json").read_text())
    assert meta["tuning"]["chosen"] == tuning["chosen"]
    report = write_report([rec], tmp_path / "r.html")
    assert _parse(report).tables["tuning"][1][:3] == ["userknn", "3", f"neighbors={best['neighbors']}"]
