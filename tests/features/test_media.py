"""Audio and video extractors on generated media: alike items land nearer, broken files are absent, limits hold."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import ItemContent
from fusionrec.data.loaders import load_dataset
from fusionrec.errors import ConfigError
from fusionrec.features import FeatureStore, extract_modality, get_extractor, run_extraction
from fusionrec.features.base import extractor_for

from .media_support import (
    SR,
    nearest_same_group,
    noise,
    tone,
    write_av_clip,
    write_clip,
    write_wav,
)

RED, BLUE, GREEN, YELLOW = (220, 30, 30), (30, 40, 220), (30, 200, 40), (230, 220, 30)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> tuple[list[str], list[int]]:
    """Three groups of three clips made alike within a group: low tones, white noise, high tones."""
    d = tmp_path_factory.mktemp("sounds")
    paths, groups = [], []
    for k, (f, amp, secs) in enumerate([(220, 0.3, 2.0), (233, 0.2, 1.5), (247, 0.4, 2.5)]):
        paths.append(write_wav(d / f"low{k}.wav", tone(f, secs, amp=amp)))
        groups.append(0)
    for k in range(3):
        paths.append(write_wav(d / f"noise{k}.wav", noise(1.5 + 0.5 * k, seed=k, amp=0.15 + 0.05 * k)))
        groups.append(1)
    for k, (f, amp) in enumerate([(2900, 0.3), (3100, 0.2), (3300, 0.35)]):
        paths.append(write_wav(d / f"high{k}.wav", tone(f, 2.0, amp=amp, harmonics=1)))
        groups.append(2)
    return paths, groups


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[list[str], list[int]]:
    """Two groups of clips with distinct colour scenes (red then blue vs green then yellow), varied in
    length, shade and noise."""
    d = tmp_path_factory.mktemp("clips")
    paths, groups = [], []
    for k in range(3):
        shade = 20 * k
        paths.append(
            write_clip(d / f"rb{k}.mp4", [((RED[0] - shade, 30, 30), 10 + 3 * k), (BLUE, 10)], seed=k)
        )
        groups.append(0)
        paths.append(
            write_clip(d / f"gy{k}.mp4", [((30, GREEN[1] - shade, 40), 12), (YELLOW, 8 + 4 * k)], seed=10 + k)
        )
        groups.append(1)
    return paths, groups


def test_mfcc_alike_sounds_land_nearer(sounds):
    paths, groups = sounds
    ext = get_extractor("mfcc")
    values, present = ext.transform(paths)
    assert values.shape == (9, 6 * 20 + 2 * 40) and present.all()
    assert np.isfinite(values).all()
    assert all(nearest_same_group(values, groups)), nearest_same_group(values, groups)


def test_log_mel_puts_a_tone_in_its_band_and_reads_level_in_db():
    # hand-checkable: a 1 kHz sine peaks in the mel band centred nearest 1 kHz, and doubling the amplitude
    # adds 20*log10(2) = 6.02 dB to every band where the tone's energy is
    ext = get_extractor("mfcc")
    y = tone(1000, 1.0, harmonics=1)
    quiet, loud = ext.log_mel(0.5 * y), ext.log_mel(y)
    mel = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 42)
    centres = 700 * (10 ** (mel[1:-1] / 2595) - 1)
    band = int(quiet.mean(1).argmax())
    assert abs(centres[band] - 1000) == np.abs(centres - 1000).min()
    np.testing.assert_allclose(loud[band] - quiet[band], 20 * np.log10(2), atol=1e-3)


def test_long_audio_is_cut_at_max_seconds(tmp_path):
    # a 20 s file with max_seconds=1 is described exactly like its first second (the rest is not decoded)
    y = np.concatenate([tone(300, 1.0), noise(19.0, seed=1)])
    long_path = write_wav(tmp_path / "long.wav", y)
    head_path = write_wav(tmp_path / "head.wav", y[:SR])
    ext = get_extractor("mfcc", max_seconds=1.0)
    values, present = ext.transform([long_path, head_path])
    assert present.all()
    np.testing.assert_allclose(values[0], values[1], rtol=1e-5, atol=1e-4)
    full = get_extractor("mfcc").transform([long_path])[0]
    assert not np.allclose(full[0], values[0], atol=1e-2)
    # a WAV cut short in transfer (its header promises more) is described by the samples that are there
    data = Path(long_path).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 2 * SR])  # header + the first second
    np.testing.assert_allclose(ext.transform([str(cut)])[0][0], values[1], rtol=1e-5, atol=1e-4)


def test_compressed_audio_decodes_near_its_source(tmp_path, sounds):
    # an MP3 of a tone lands nearer that tone's WAV than the other groups do
    import av

    paths, groups = sounds
    mp3 = tmp_path / "low.mp3"
    with av.open(str(mp3), "w") as out:
        stream = out.add_stream("mp3", rate=SR)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(tone(220, 2.0).reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = SR
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    values, present = get_extractor("mfcc").transform([*paths, str(mp3)])
    assert present.all()
    assert nearest_same_group(values, [*groups, 0])[-1]


@pytest.mark.parametrize("image", ["color", "cnn"])
def test_frames_alike_clips_land_nearer(image, clips):
    paths, groups = clips
    ext = extractor_for("video", image, fps=2.0)
    values, present = ext.transform(paths)
    d = get_extractor(image).dim
    assert values.shape == (6, 2 * d) and present.all()
    assert all(nearest_same_group(values, groups)), nearest_same_group(values, groups)
    cfg = ext.config()
    assert cfg["name"] == "frames" and cfg["image"]["name"] == image and cfg["dims"] == 2 * d


def test_frames_pool_mean_and_max_over_sampled_frames(clips):
    paths, _ = clips
    ext = extractor_for("video", "color", fps=2.0, max_frames=3)
    frames = ext.frames(paths[0])  # 2 s red then 1 s blue at 10 fps: frames at 0, 0.5, 1.0 s (max_frames=3)
    assert frames.shape[0] == 3 and frames.dtype == np.uint8
    per_frame, _ = get_extractor("color").transform(list(frames))
    row, present = ext.transform([paths[0]])
    assert present[0]
    d = per_frame.shape[1]
    np.testing.assert_allclose(row[0, :d], per_frame.mean(0), atol=1e-6)
    np.testing.assert_allclose(row[0, d:], per_frame.max(0), atol=1e-6)
    # parameters the frames extractor does not take go to the per-frame image extractor
    narrow = extractor_for("video", "color", fps=2.0, h_bins=8)
    assert narrow.dim == 2 * 8 * 4 * 4 and narrow.config()["image"]["params"]["h_bins"] == 8
    with pytest.raises(ConfigError, match="extracts image features, not audio"):
        extractor_for("audio", "color")


def test_soundtrack_is_its_own_modality(tmp_path, sounds):
    # the audio extractor reads the videos' soundtracks; a silent video is absent there, not a failure
    paths, _ = sounds
    with_sound = write_av_clip(tmp_path / "a.mp4", RED, audio=tone(220, 2.0))
    with_noise = write_av_clip(tmp_path / "b.mp4", RED, audio=noise(2.0, seed=4))
    silent = write_av_clip(tmp_path / "c.mp4", BLUE)
    content = ItemContent(
        texts=["", "", "", ""],
        image_paths=[None] * 4,
        audio_paths=[paths[0], None, None, None],
        video_paths=[with_sound, with_noise, silent, None],
    )
    result = run_extraction(
        content, image=None, text=None, audio="mfcc", video="color", soundtrack="mfcc", cache=False
    )
    f = result.features
    assert set(f) == {"audio", "video", "soundtrack"}
    np.testing.assert_array_equal(f.mask("video"), [True, True, True, False])
    np.testing.assert_array_equal(f.mask("soundtrack"), [True, True, False, False])
    np.testing.assert_array_equal(f.mask("audio"), [True, False, False, False])
    assert result.reports["soundtrack"].n_failed == 0
    assert result.configs["soundtrack"]["reads"] == "video"
    # the 220 Hz soundtrack is nearer the 220 Hz WAV than the noise soundtrack is
    tone_wav = f["audio"][0]
    st = f["soundtrack"]
    assert np.linalg.norm(st[0] - tone_wav) < np.linalg.norm(st[1] - tone_wav)


@pytest.fixture
def awkward_media(tmp_path: Path, sounds, clips) -> dict[str, str]:
    """Every kind of bad media file a catalogue can hold; keys say what each is."""
    d = tmp_path / "awkward"
    d.mkdir()
    out = {"good_audio": sounds[0][0], "good_video": clips[0][0]}
    data = Path(clips[0][0]).read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    out["truncated"] = str(d / "truncated.mp4")
    (d / "empty.wav").write_bytes(b"")
    out["empty"] = str(d / "empty.wav")
    (d / "text.mp4").write_text("this is not a media file\n")
    out["text"] = str(d / "text.mp4")
    out["missing"] = str(d / "missing.wav")
    os.symlink("/dev/zero", d / "zero.wav")
    out["dev_zero"] = str(d / "zero.wav")
    os.mkfifo(d / "fifo.mp4")
    out["fifo"] = str(d / "fifo.mp4")
    (d / "folder.wav").mkdir()
    out["directory"] = str(d / "folder.wav")
    # a concat list naming a good file: FFmpeg must not be allowed to open it
    (d / "list.mp4").write_text(f"ffconcat version 1.0\nfile '{sounds[0][0]}'\n")
    out["concat_list"] = str(d / "list.mp4")
    from PIL import Image

    Image.new("RGB", (32, 32), RED).save(d / "picture.wav", format="JPEG")
    out["jpeg_named_wav"] = str(d / "picture.wav")
    return out


GOOD = {"mfcc": "good_audio", "frames": "good_video"}


@pytest.mark.parametrize("name", ["mfcc", "frames"])
def test_broken_media_is_reported_not_fatal(name, awkward_media, tmp_path):
    # a FIFO or a link to /dev/zero must neither hang nor crash extraction; every bad file is named
    kinds = list(awkward_media)
    paths = [awkward_media[k] for k in kinds] + [None, ""]
    ext = get_extractor(name, **({"image": "color"} if name == "frames" else {}))
    store = FeatureStore(tmp_path / "store")
    values, present, report = extract_modality(ext, paths, store=store)
    good = {GOOD[name]}
    for i, kind in enumerate(kinds):
        assert present[i] == (kind in good), kind
        if kind not in good:
            assert not values[i].any(), kind
    assert not present[-2:].any()
    failed = {f.source: f.reason for f in report.failures}
    assert set(failed) == {awkward_media[k] for k in kinds if k not in good}
    assert all(failed.values())
    assert "not a regular file" in failed[awkward_media["dev_zero"]]
    assert "not a regular file" in failed[awkward_media["fifo"]]
    assert "empty" in failed[awkward_media["empty"]]
    other_kind_good = awkward_media[GOOD["frames" if name == "mfcc" else "mfcc"]]
    assert failed[other_kind_good].startswith("no "), failed[other_kind_good]  # no stream of this kind
    assert report.n_no_content == 2
    # the re-run comes from the cache and still names every unusable file
    values2, present2, report2 = extract_modality(
        get_extractor(name, **({"image": "color"} if name == "frames" else {})), paths, store=store
    )
    assert report2.n_extracted == 0
    assert {f.source for f in report2.failures} == set(failed)
    np.testing.assert_array_equal(present2, present)
    np.testing.assert_allclose(values2, values, atol=1e-6)


def test_limits_refuse_big_files_frames_and_slow_decodes(sounds, clips):
    audio, video = sounds[0][0], clips[0][0]
    size = os.path.getsize(audio)
    ext = get_extractor("mfcc", max_bytes=size - 1)
    _, present, report = extract_modality(ext, [audio])
    assert not present[0] and "too large" in report.failures[0].reason
    ext = extractor_for("video", "color", max_pixels=1000)  # the clips are 96x64
    _, present = ext.transform([video])
    assert not present[0] and "frames too large" in ext.last_failures[0].reason
    ext = get_extractor("mfcc", max_decode_seconds=0.0)
    _, present = ext.transform([audio])
    assert not present[0] and "max_decode_seconds" in ext.last_failures[0].reason


def test_loaders_find_media_dirs_and_columns(tmp_path, sounds, clips):
    import shutil

    root = tmp_path / "ml"
    (root / "audio").mkdir(parents=True)
    (root / "videos").mkdir()
    shutil.copy(sounds[0][0], root / "audio" / "1.wav")
    shutil.copy(clips[0][0], root / "videos" / "2.mp4")
    pd.DataFrame({"userId": [1, 1, 2], "movieId": [1, 2, 2], "rating": [4.0, 5.0, 3.0]}).to_csv(
        root / "ratings.csv", index=False
    )
    pd.DataFrame(
        {"movieId": [1, 2], "title": ["A (2000)", "B (2001)"], "genres": ["Drama", "Comedy"]}
    ).to_csv(root / "movies.csv", index=False)
    ds = load_dataset(root)
    order = ds.item_ids.indices(["1", "2"])
    assert [ds.content.audio_paths[i] for i in order] == [str(root / "audio" / "1.wav"), None]
    assert [ds.content.video_paths[i] for i in order] == [None, str(root / "videos" / "2.mp4")]

    shop = tmp_path / "shop"
    shop.mkdir()
    pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "b"]}).to_csv(
        shop / "interactions.csv", index=False
    )
    pd.DataFrame(
        {"item_id": ["a", "b"], "title": ["A", "B"], "audio": ["a.wav", None], "video": [None, clips[0][0]]}
    ).to_csv(shop / "items.csv", index=False)
    ds = load_dataset(shop)
    order = ds.item_ids.indices(["a", "b"])
    assert [ds.content.audio_paths[i] for i in order] == [str(shop / "a.wav"), None]
    assert [ds.content.video_paths[i] for i in order] == [None, clips[0][0]]
    assert ds.content.subset(np.array(order[::-1])).video_paths == [clips[0][0], None]


def _tool(name: str) -> str:
    import shutil

    path = shutil.which(name)
    assert path, f"{name} is needed for this test: apt-get install -y espeak-ng sox"
    return path


def test_speech_from_espeak_lands_near_speech(tmp_path, sounds):
    # real speech (espeak-ng, converted to 16 kHz FLAC by sox) groups with speech, not with tones or noise
    import subprocess

    paths, groups = sounds
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    sentences = ["the quick brown fox jumps over the lazy dog", "recommend me a film", "play some music now"]
    for k, (text, speed) in enumerate(zip(sentences, (150, 170, 190), strict=True)):
        raw = tmp_path / f"speech{k}.wav"
        subprocess.run([espeak, "-s", str(speed), "-w", str(raw), text], check=True, timeout=60)
        flac = tmp_path / f"speech{k}.flac"
        subprocess.run([sox, str(raw), "-r", "16000", "-c", "1", str(flac)], check=True, timeout=60)
        paths = [*paths, str(flac)]
        groups = [*groups, 3]
    values, present = get_extractor("mfcc").transform(paths)
    assert present.all()
    assert all(nearest_same_group(values, groups)[-3:])


def test_one_new_item_is_featurised_from_its_media(tmp_path, sounds):
    # the cold-item path: a manifest's audio / video / soundtrack configs applied to one item's files
    from fusionrec.features import extract_item_features

    paths, _ = sounds
    clip = write_av_clip(tmp_path / "new.mp4", GREEN, audio=tone(220, 1.5))
    content = ItemContent(texts=[""], image_paths=[None], audio_paths=[paths[0]], video_paths=[clip])
    result = run_extraction(
        content, image=None, text=None, audio="mfcc", video="color", soundtrack="mfcc", cache=False
    )
    one = extract_item_features(result.configs, media_paths={"audio": paths[0], "video": clip})
    assert set(one) == {"audio", "video", "soundtrack"}
    for name in one:
        np.testing.assert_allclose(one[name], result.features[name][0], atol=1e-5)
    assert set(extract_item_features(result.configs, media_paths={"video": clip})) == {"video", "soundtrack"}


def test_image_fifo_is_refused_not_hung(tmp_path, awkward_media):
    # hashing a FIFO named .jpg used to block forever before any image extractor ran
    fifo = tmp_path / "poster.jpg"
    os.mkfifo(fifo)
    values, present, report = extract_modality(get_extractor("color"), [str(fifo), awkward_media["dev_zero"]])
    assert not present.any() and report.n_failed == 2
    assert all("not a regular file" in f.reason for f in report.failures)
