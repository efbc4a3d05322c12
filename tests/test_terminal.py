"""What a user sees in the terminal: log lines, progress bars, summaries and flag names of the CLI."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pytest


def fusionrec(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_logs_of_a_real_fit_hold_plain_numbers(caplog):
    # late-fusion and content-knn logged their validation weights as {'als': np.float64(0.267), ...}
    from fusionrec.data.loaders import LoadOptions, load_dataset
    from fusionrec.data.splits import split_dataset
    from fusionrec.pipeline import build_model, fit_artifact

    ds = load_dataset("demo", options=LoadOptions(kcore=5))
    split = split_dataset(ds, "ratio", seed=1)
    model = build_model("late-fusion", {"models": "als,content-knn"}, seed=1, show_progress=False)
    with caplog.at_level(logging.INFO, logger="fusionrec"):
        fit_artifact(ds, split, model, seed=1)
    lines = [r.getMessage() for r in caplog.records]
    weights = [line for line in lines if line.startswith("late-fusion weights")]
    gates = [line for line in lines if line.startswith("content-knn gates")]
    assert weights and gates, lines
    assert re.search(r"'als': \d\.\d+", weights[0]) and re.search(r"'text': \d\.\d+", gates[0])
    assert not [line for line in lines if "np." in line]


def test_a_bar_stopped_early_ends_at_its_epoch_and_logs_stay_off_it(tmp_path):
    # the bar used to stay at e.g. 35 % with an ETA for every remaining epoch, with log lines glued into it
    proc = fusionrec("fit", "--data", "demo", "--kcore", "5", "--model", "bpr-torch", "--param", "factors=16",
                     "--param", "epochs=200", "--param", "patience=2", "--param", "learning_rate=0.05",
                     "--out", tmp_path / "a", "--no-eval")  # fmt: skip
    err = proc.stderr
    stop = re.search(r"early stop at epoch (\d+)", err)
    assert stop, err
    stopped = int(stop.group(1))
    # tqdm.write clears the bar first: the log line starts a line of its own
    line = next(seg for seg in err.split("\n") if "early stop" in seg)
    assert line.split("\r")[-1].startswith("INFO bpr-torch: early stop")
    renders = [seg for seg in re.split(r"[\r\n]", err) if seg.startswith("bpr-torch:")]
    assert f"{stopped}/{stopped} [" in renders[-1], renders[-3:]
    assert "/200 [" not in renders[-1]


def test_implicit_bars_follow_quiet(tmp_path):
    loud = fusionrec("fit", "--data", "demo", "--kcore", "5", "--model", "als", "--param", "epochs=3",
                     "--out", tmp_path / "a", "--no-eval")  # fmt: skip
    assert "3/3 [" in loud.stderr
    quiet = fusionrec("fit", "--data", "demo", "--kcore", "5", "--model", "als", "--param", "epochs=3",
                      "--out", tmp_path / "b", "--no-eval", "--quiet")  # fmt: skip
    assert quiet.stderr == ""


def test_features_prints_each_summary_once(tmp_path):
    proc = fusionrec("features", "--data", "demo", "--kcore", "5", "--image", "none", "--text", "tfidf",
                     "--out", tmp_path / "f", "--no-cache")  # fmt: skip
    both = proc.stdout + proc.stderr
    assert both.count("text (tfidf): ") == 1, both
    assert "text (tfidf): 3650/3650 present" in proc.stdout


def test_export_reads_format_as_the_input_format_and_writes_to(tmp_path, benchmark_dir):
    out = tmp_path / "rb"
    args = [
        "export",
        "--data",
        benchmark_dir,
        "--format",
        "mmrec",
        "--to",
        "recbole",
        out,
        "--json",
        "--quiet",
    ]
    done = json.loads(fusionrec(*args).stdout)
    assert done["format"] == "recbole" and list(out.glob("*.train.inter"))
    old = fusionrec("export", "--data", benchmark_dir, "--input-format", "mmrec", out, check=False)
    assert old.returncode == 2 and "--input-format is now --format" in old.stderr and "--to" in old.stderr
    # before --to existed, --format named the output: such a command is stopped before reading anything
    before = fusionrec("export", "--data", benchmark_dir, "--format", "recbole", out, check=False)
    assert before.returncode == 2 and "--to mmrec|recbole" in before.stderr


@pytest.mark.parametrize("argv", [["models", "--json"], ["info", "--data", "demo", "--json"]])
def test_cli_configures_only_the_fusionrec_logger(argv, capsys):
    from fusionrec.cli import main

    root = logging.getLogger()
    before = list(root.handlers)
    assert main(argv) == 0
    assert root.handlers == before  # no basicConfig: an application embedding fusionrec keeps its logging
    handlers = logging.getLogger("fusionrec").handlers
    assert len([h for h in handlers if type(h).__name__ == "_AroundBars"]) == 1
    assert logging.getLogger("faiss.loader").getEffectiveLevel() >= logging.WARNING
