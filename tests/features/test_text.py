"""Text extractors: shapes, normalisation, absent texts, learned state round trips, one-item featurising."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.dataset import ItemContent
from fusionrec.errors import ConfigError, NotFittedError
from fusionrec.features import extract_item_features, extractor_from_config, get_extractor, run_extraction
from fusionrec.features.base import decode_strings, encode_strings

from .conftest import write_images

CORPUS = [
    "Toy Story (1995). genres: Adventure, Animation, Children, Comedy. tags: pixar, toys, fun",
    "Toy Story 2 (1999). genres: Adventure, Animation, Children, Comedy. tags: pixar, toys, sequel",
    "Heat (1995). genres: Action, Crime, Thriller. tags: heist, robbery, los angeles",
    "The Town (2010). genres: Crime, Drama, Thriller. tags: heist, robbery, boston",
    "Alien (1979). genres: Horror, Sci-Fi. tags: space, monster, dark",
    "Aliens (1986). genres: Action, Horror, Sci-Fi. tags: space, monster, sequel",
    "",
    "   ",
]


def _nearest(values: np.ndarray, i: int) -> int:
    sims = values @ values[i]
    sims[i] = -np.inf
    return int(np.argmax(sims))


def test_sentence_embeddings():
    ext = get_extractor("sentence")
    values, present = ext.transform(CORPUS)
    assert values.shape == (8, 384) and values.dtype == np.float32
    assert present.tolist() == [True] * 6 + [False, False]
    np.testing.assert_allclose(np.linalg.norm(values[:6], axis=1), 1.0, rtol=1e-5)
    assert not values[6:].any()
    assert [_nearest(values[:6], i) for i in range(6)] == [1, 0, 3, 2, 5, 4]
    cfg = ext.config()
    assert cfg["dims"] == 384 and cfg["model"] == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("tfidf", {"min_df": 1, "svd_dims": 4}),
        ("tfidf", {"min_df": 1, "svd_dims": None}),
        ("lda", {"min_df": 1, "n_topics": 3}),
        ("wordvec", {}),
    ],
)
def test_text_extractors(name, params):
    ext = get_extractor(name, **params)
    if ext.needs_fit:
        with pytest.raises(NotFittedError):
            ext.transform(CORPUS)
    values, present = ext.fit_transform(CORPUS)
    assert values.shape == (8, ext.dim) and values.dtype == np.float32
    assert present.tolist() == [True] * 6 + [False, False]
    assert np.isfinite(values).all() and not values[6:].any()
    if name == "lda":
        np.testing.assert_allclose(values[:6].sum(axis=1), 1.0, rtol=1e-5)
    else:
        np.testing.assert_allclose(np.linalg.norm(values[:6], axis=1), 1.0, rtol=1e-5)
    if name != "lda":  # pairs that share words end up nearest
        assert _nearest(values[:6], 0) == 1 and _nearest(values[:6], 2) == 3
    # a text made only of unknown / stop words is absent for vocabulary-based extractors
    if ext.needs_fit:
        _, p = ext.transform(["the and of zzzqqq"])
        assert not p[0]
        # the state rebuilds an identical extractor (the way a server would)
        again = extractor_from_config(ext.config(), ext.state())
        np.testing.assert_array_equal(again.transform(CORPUS)[0], values)
        with pytest.raises(ConfigError, match="saved state"):
            extractor_from_config(ext.config())


def test_string_arrays_round_trip():
    words = ["heist", "café", "", "日本", "toy story"]
    assert decode_strings(*encode_strings(words)) == words


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown extractor"):
        get_extractor("word2vec")
    with pytest.raises(ConfigError, match="accepts"):
        get_extractor("tfidf", n_topics=3)
    items = ItemContent(texts=CORPUS, image_paths=[None] * len(CORPUS))
    with pytest.raises(ConfigError, match="text extractor"):
        run_extraction(items, image="sentence", text=None, cache=False)


def test_extract_item_features_matches_batch(tmp_path):
    from fusionrec.data.export import write_features

    paths = write_images(tmp_path / "imgs", len(CORPUS))
    items = ItemContent(texts=CORPUS, image_paths=paths)
    res = run_extraction(
        items, image="color", text="tfidf", text_params={"min_df": 1, "svd_dims": 4}, cache=tmp_path / "cache"
    )
    feats = res.features
    assert set(feats.extractors) == {"image", "text"}
    assert feats.extractors["text"]["state"] == "extractors.safetensors"
    assert any(k.startswith("text/") for k in feats.extractor_state)
    out = tmp_path / "feats"
    write_features(out, feats, [str(i) for i in range(len(CORPUS))])
    import json

    configs = json.loads((out / "manifest.json").read_text())["extractors"]
    one = extract_item_features(configs, text=CORPUS[2], image_bytes_or_path=paths[2], base_dir=out)
    np.testing.assert_allclose(one["text"], feats["text"][2], atol=1e-6)
    np.testing.assert_allclose(one["image"], feats["image"][2], atol=1e-6)
    # from raw bytes, and with the state handed over directly
    state = {k.split("/", 1)[1]: v for k, v in feats.extractor_state.items() if k.startswith("text/")}
    with open(paths[2], "rb") as f:
        two = extract_item_features(
            configs, text=CORPUS[2], image_bytes_or_path=f.read(), states={"text": state}
        )
    np.testing.assert_allclose(two["image"], one["image"], atol=1e-6)
    np.testing.assert_allclose(two["text"], one["text"], atol=1e-6)
    # missing or unreadable content leaves the modality out (absent), it does not raise
    (tmp_path / "bad.jpg").write_text("nope")
    three = extract_item_features(
        configs, text="", image_bytes_or_path=str(tmp_path / "bad.jpg"), base_dir=out
    )
    assert three == {}
    with pytest.raises(ConfigError, match="base_dir"):
        extract_item_features({"text": configs["text"]}, text="heist")


def test_sentence_onnx_matches_sentence_transformers():
    long_text = " ".join(CORPUS) * 20  # past the 256-token limit: truncation must agree too
    texts = CORPUS[:6] + [long_text, "x"]
    onnx = get_extractor("sentence", runtime="onnx")
    eager = get_extractor("sentence", runtime="torch")
    a, pa = onnx.transform(texts)
    b, pb = eager.transform(texts)
    assert onnx.backend == "onnx" and eager.backend == "torch"
    assert pa.all() and pb.all()
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert onnx.config() == eager.config()
