"""`fusionrec features --audio mfcc --video cnn` on a folder of generated clips, a cached re-run, a model on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.cli import main
from fusionrec.data.loaders import load_dataset

from .media_support import noise, tone, write_av_clip, write_clip, write_wav

COLOURS = [(220, 30, 30), (30, 40, 220), (30, 200, 40), (230, 220, 30)]


@pytest.fixture
def clip_shop(tmp_path: Path) -> Path:
    """Items with a clip each (some with sound, one broken, one missing) and some with an audio file."""
    root = tmp_path / "clips"
    (root / "media").mkdir(parents=True)
    ids = [f"v{i}" for i in range(8)]
    audio, video = [], []
    for i, raw in enumerate(ids):
        colour = COLOURS[i % 4]
        if i % 2:
            write_av_clip(root / "media" / f"{raw}.mp4", colour, audio=tone(200 + 100 * (i % 4), 1.5))
        else:
            write_clip(root / "media" / f"{raw}.mp4", [(colour, 10), (COLOURS[(i + 1) % 4], 5)], seed=i)
        video.append(f"media/{raw}.mp4")
        audio.append(write_wav(root / "media" / f"{raw}.wav", noise(1.0, seed=i)) if i < 4 else None)
    (root / "media" / "v5.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken")
    video[7] = None
    rng = np.random.RandomState(0)
    rows = [(f"u{u}", ids[j]) for u in range(10) for j in rng.choice(8, 4, replace=False)]
    pd.DataFrame(rows, columns=["user_id", "item_id"]).to_csv(root / "interactions.csv", index=False)
    pd.DataFrame(
        {"item_id": ids, "title": [f"clip {i}" for i in ids], "audio": audio, "video": video}
    ).to_csv(root / "items.csv", index=False)
    return root


def test_features_cli_audio_video_cache_hit_and_a_model_trains(clip_shop, tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "features",
        "--data",
        str(clip_shop),
        "--image",
        "none",
        "--text",
        "none",
        "--audio",
        "mfcc",
        "--video",
        "cnn",
        "--param",
        "video.fps=2",
        "--param",
        "max_frames=4",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--quiet",
        "--json",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["modalities"] == {"audio": 200, "video": 2560, "soundtrack": 200}
    video = first["reports"]["video"]
    assert video["failed"] == 1 and video["failures"][0]["source"].endswith("v5.mp4")
    assert video["no_content"] == 1 and video["present"] == 6
    sound = first["reports"]["soundtrack"]
    assert sound["failed"] == 1  # the broken clip; silent clips are absent without being failures
    assert sound["present"] == 2  # v1, v3 (v5 broken, v7 has no video)
    assert first["reports"]["audio"]["present"] == 4
    for f in ("audio_feat.npy", "audio_mask.npy", "video_feat.npy", "video_mask.npy", "soundtrack_feat.npy"):
        assert (out / f).exists(), f
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extractors"]["video"]["name"] == "frames"
    assert manifest["extractors"]["video"]["image"]["name"] == "cnn"
    assert manifest["extractors"]["video"]["params"]["max_frames"] == 4
    assert manifest["extractors"]["soundtrack"]["reads"] == "video"
    ds = load_dataset(out)
    assert ds.features.dims == {"audio": 200, "video": 2560, "soundtrack": 200}
    src = load_dataset(clip_shop)
    mask = ds.features.mask("video")
    np.testing.assert_array_equal(mask[src.item_ids.indices(["v5", "v7", "v0"])], [False, False, True])

    # the second run hashes the files and reads every row back from the cache
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    for name in ("audio", "video", "soundtrack"):
        assert second["reports"][name]["extracted"] == 0, name
        assert second["reports"][name]["cached"] > 0, name
    np.testing.assert_array_equal(np.load(out / "video_feat.npy"), load_dataset(out).features["video"])

    # a model trains on the new modalities by their names
    art = tmp_path / "vbpr"
    fit = [
        "fit",
        "--data",
        str(out),
        "--model",
        "vbpr",
        "--param",
        "modalities=audio,video,soundtrack",
        "--param",
        "epochs=2",
        "--param",
        "pca_dim=none",  # no PCA of the 2560-d video pools: an 8-item test needs none
        "--out",
        str(art),
        "--quiet",
        "--json",
    ]
    assert main(fit) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == "vbpr" and trained["params"]["modalities"] == ["audio", "video", "soundtrack"]
    assert "recall@20" in trained["test"]
    assert (art / "model.json").exists()


def test_features_cli_choices_come_from_the_registry(clip_shop, tmp_path, capsys):
    from fusionrec.features.base import EXTRACTORS

    with pytest.raises(SystemExit):
        main(["features", "--data", str(clip_shop), "--audio", "cnn", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "invalid choice" in err and "mfcc" in err
    with pytest.raises(SystemExit):
        main(["features", "--help"])
    text = capsys.readouterr().out
    for name in EXTRACTORS:
        assert name in text, name
