"""The CLI, the Python API (fusionrec.recommend) and the live server give the same lists for the same query.

Regression: folding in a user from items with a repeated id gave different top-10 lists through the CLI
(repeats counted twice by the model's fold-in) and the server (repeats removed first).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from serving_helpers import copy_artifact

from fusionrec.artifacts import load_artifact
from fusionrec.data.splits import split_dataset
from fusionrec.pipeline import build_model, fit_artifact
from fusionrec.recommend import recommend_for_items, recommend_for_user, similar_items


def cli(*args) -> list[tuple[str, float]]:
    proc = subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", "recommend", *map(str, args), "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return [(r["item_id"], r["score"]) for r in json.loads(proc.stdout)["recommendations"]]


def ids(rows) -> list[str]:
    return [r[0] if isinstance(r, tuple) else r["item_id"] for r in rows]


def same(a, b) -> None:
    assert ids(a) == ids(b)
    got = [r[1] if isinstance(r, tuple) else r["score"] for r in a]
    want = [r[1] if isinstance(r, tuple) else r["score"] for r in b]
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.fixture(scope="module")
def itemknn_template(tmp_path_factory, demo_dataset):
    """ItemKNN (not an inner-product model: scores through the model's own fold-in) on the demo data."""
    from fusionrec.artifacts import save_artifact

    split = split_dataset(demo_dataset, "ratio", seed=7)
    art, _ = fit_artifact(demo_dataset, split, build_model("itemknn", {}, seed=7, show_progress=False))
    return save_artifact(art, tmp_path_factory.mktemp("t") / "itemknn")


# als: vectors (ridge fold-in, cosine of item vectors); itemknn: the model's own fold-in; most-popular on
# the movies with features: no item vectors, so similar items come from content (all modalities, or one)
@pytest.mark.parametrize("template", ["als_template", "itemknn_template", "movies_pop_template"])
def test_cli_python_and_server_agree(template, request, tmp_path, client_for):
    path = copy_artifact(request.getfixturevalue(template), tmp_path)
    art = load_artifact(path)
    # exact retrieval: the ANN index (the server's default for factor models) is an approximation by design
    c = client_for(path, index="exact")
    user = art.user_ids.raw(5)
    items = [art.item_ids.raw(i) for i in (3, 40, 3, 7, 40)]  # repeats on purpose

    python = recommend_for_user(art, user, k=10)
    server = c.get(f"/users/{user}/recommendations", params={"k": 10}).json()["items"]
    same(cli(path, "--user", user, "-k", 10), python)
    same(server, python)

    python = recommend_for_items(art, items, k=10)
    assert python == recommend_for_items(art, sorted(set(items)), k=10)  # a set: repeats count once
    server = c.post("/recommendations", json={"items": items, "k": 10}).json()["items"]
    same(cli(path, "--items", ",".join(items), "-k", 10), python)
    same(server, python)
    assert not set(items) & set(ids(python))

    if template == "itemknn_template":
        return  # no item vectors and no content: nothing to compare items by
    item = art.item_ids.raw(12)
    for modality in ["all"] + (["text"] if template == "movies_pop_template" else []):
        python = similar_items(art, item, k=10, modality=modality)
        server = c.get(f"/items/{item}/similar", params={"k": 10, "modality": modality}).json()["items"]
        same(cli(path, "--similar", item, "-k", 10, "--modality", modality), python)
        same(server, python)
        assert item not in ids(python)
