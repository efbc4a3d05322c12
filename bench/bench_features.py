"""Feature extraction throughput on the real posters and texts (decoding included), cache re-runs, memory.

Rows: CNN images/s with onnxruntime and with eager torch in the same process (and their ratio), sentence
texts/s, BoVW and colour images/s, the time a cached re-run takes, and peak resident memory; then audio and
video clips/s on generated media (``run_media``; ``python bench/bench_features.py --media`` runs only those).
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data" / "movielens-small-mm").resolve()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _row(case: str, value: float, unit: str, note: str = "") -> dict:
    return {"bench": "features", "case": case, "value": float(value), "unit": unit, "note": note}


def run(quick: bool = False) -> list[dict]:
    import numpy as np

    from fusionrec.data.loaders import load_movielens
    from fusionrec.features import FeatureStore, extract_modality, get_extractor

    ds = load_movielens(DATA)
    assert ds.content is not None
    posters = [p for p in ds.content.image_paths if p]
    texts = [t for t in ds.content.texts if t]
    rng = np.random.RandomState(0)
    rows: list[dict] = []

    n_onnx, n_torch = (64, 32) if quick else (320, 96)
    sample = [posters[i] for i in rng.choice(len(posters), n_onnx, replace=False)]

    # CNN, onnxruntime: first call exports (once per weights file) and warms the session up
    onnx = get_extractor("cnn", runtime="onnx")
    t = time.perf_counter()
    onnx.transform(sample[:2])
    rows.append(_row("cnn onnx session ready", time.perf_counter() - t, "s", "export if not cached + load"))
    t = time.perf_counter()
    _, present = onnx.transform(sample)
    onnx_ips = len(sample) / (time.perf_counter() - t)
    rows.append(
        _row("cnn efficientnet-lite0 onnx", onnx_ips, "img/s", f"224x224, decode incl., n={len(sample)}")
    )

    eager = get_extractor("cnn", runtime="torch")
    eager.transform(sample[:2])
    t = time.perf_counter()
    eager.transform(sample[:n_torch])
    torch_ips = n_torch / (time.perf_counter() - t)
    rows.append(_row("cnn efficientnet-lite0 torch eager", torch_ips, "img/s", f"n={n_torch}"))
    rows.append(_row("cnn onnx / torch speed-up", onnx_ips / torch_ips, "x", "same process, same images"))

    # decoding alone (the part overlapped with inference)
    from fusionrec.features.images import load_resized

    t = time.perf_counter()
    for p in sample:
        load_resized(p, 224)
    rows.append(_row("decode+resize 224 (1 thread)", len(sample) / (time.perf_counter() - t), "img/s"))
    rows.append(_row("peak RSS after cnn", _rss_mb(), "MiB"))

    # sentence embeddings
    n_txt = 500 if quick else 2000
    tsample = [texts[i] for i in rng.choice(len(texts), n_txt, replace=False)]
    sent = get_extractor("sentence")
    t = time.perf_counter()
    sent.transform(tsample[:8])
    rows.append(_row("sentence model load", time.perf_counter() - t, "s"))
    t = time.perf_counter()
    sent.transform(tsample)
    words = np.mean([len(x.split()) for x in tsample])
    sent_tps = n_txt / (time.perf_counter() - t)
    rows.append(
        _row(
            f"sentence all-MiniLM-L6-v2 {sent.backend}",
            sent_tps,
            "texts/s",
            f"n={n_txt}, {words:.1f} words/text",
        )
    )
    st_torch = get_extractor("sentence", runtime="torch")
    st_torch.transform(tsample[:8])
    n_st = n_txt // 2
    t = time.perf_counter()
    st_torch.transform(tsample[:n_st])
    torch_tps = n_st / (time.perf_counter() - t)
    rows.append(_row("sentence all-MiniLM-L6-v2 torch", torch_tps, "texts/s", f"n={n_st}"))
    rows.append(_row("sentence onnx / torch speed-up", sent_tps / torch_tps, "x", "same process"))
    rows.append(_row("peak RSS after sentence", _rss_mb(), "MiB"))

    # classic image features
    n_bovw = 64 if quick else 256
    bovw = get_extractor("bovw", fit_images=min(200, n_bovw), vocab_size=256)
    t = time.perf_counter()
    bovw.fit(sample[:n_bovw] if n_bovw <= len(sample) else posters[:n_bovw])
    rows.append(
        _row("bovw fit (orb + minibatch k-means)", time.perf_counter() - t, "s", f"{min(200, n_bovw)} images")
    )
    bsample = posters[:n_bovw]
    t = time.perf_counter()
    bovw.transform(bsample)
    rows.append(_row("bovw orb-256 transform", n_bovw / (time.perf_counter() - t), "img/s"))
    color = get_extractor("color")
    t = time.perf_counter()
    color.transform(bsample)
    rows.append(_row("color hsv histogram", n_bovw / (time.perf_counter() - t), "img/s"))

    # cache: a re-run hashes the files and reads the rows back
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(tmp)
        cached = posters[: (200 if quick else len(posters))]
        extract_modality(get_extractor("color"), cached, store=store)
        t = time.perf_counter()
        _, _, rep = extract_modality(get_extractor("color"), cached, store=store)
        assert rep.n_extracted == 0
        rows.append(
            _row("cached re-run (hash + lookup)", time.perf_counter() - t, "s", f"{len(cached)} posters")
        )
    rows += run_media(quick)
    rows.append(_row("peak RSS", _rss_mb(), "MiB", "whole bench process"))
    assert present.all()
    return rows


def _write_media(folder: Path, n: int, seconds: float) -> tuple[list[str], list[str]]:
    """``n`` WAVs (tone + noise) and ``n`` MP4 clips (two colour scenes, 320x240 at 25 fps, AAC soundtrack)."""
    import av
    import numpy as np

    sr, fps, w, h = 16000, 25, 320, 240
    rng = np.random.RandomState(0)
    wavs, clips = [], []
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        y = (0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.05 * rng.randn(t.size)).astype(np.float32)
        for path, with_video in ((folder / f"a{i}.wav", False), (folder / f"v{i}.mp4", True)):
            with av.open(str(path), "w") as out:
                vs = out.add_stream("mpeg4", rate=fps) if with_video else None
                if vs is not None:
                    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
                stream = out.add_stream("aac" if with_video else "pcm_s16le", rate=sr)
                stream.layout = "mono"
                for k in range(int(seconds * fps) if vs is not None else 0):
                    img = np.empty((h, w, 3), np.uint8)
                    img[:] = (200, 40, 40) if k < seconds * fps / 2 else (40, 40, 200)
                    img[:, (k * 5) % w :][:, :8] = 255
                    for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        out.mux(packet)
                if vs is not None:
                    for packet in vs.encode():
                        out.mux(packet)
                frame = av.AudioFrame.from_ndarray(y.reshape(1, -1), format="fltp", layout="mono")
                frame.sample_rate = sr
                for packet in [*stream.encode(frame), *stream.encode()]:
                    out.mux(packet)
            (clips if with_video else wavs).append(str(path))
    return wavs, clips


def run_media(quick: bool = False) -> list[dict]:
    """Audio and video extraction throughput on generated clips (decoding included), and a cached re-run."""
    from fusionrec.features import FeatureStore, extract_modality, get_extractor
    from fusionrec.features.base import extractor_for

    n, seconds = (8, 10.0) if quick else (24, 10.0)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        wavs, clips = _write_media(Path(tmp), n, seconds)
        mfcc = get_extractor("mfcc")
        mfcc.transform(wavs[:1])
        t = time.perf_counter()
        _, ok = mfcc.transform(wavs)
        rows.append(
            _row("audio mfcc (wav)", n / (time.perf_counter() - t), "clips/s", f"{seconds:.0f} s each")
        )
        t = time.perf_counter()
        _, ok2 = mfcc.transform(clips)
        rows.append(_row("soundtrack mfcc (mp4 aac)", n / (time.perf_counter() - t), "clips/s"))
        note = f"{seconds:.0f} s 320x240 25 fps, 1 frame/s"
        for image in ("color", "cnn"):
            ext = extractor_for("video", image)
            ext.transform(clips[:1])  # model load (and ONNX export on a fresh cache) left out
            t = time.perf_counter()
            _, ok3 = ext.transform(clips)
            rows.append(_row(f"video frames + {image}", n / (time.perf_counter() - t), "clips/s", note))
        store = FeatureStore(Path(tmp) / "store")
        extract_modality(extractor_for("video", "color"), clips, store=store)
        t = time.perf_counter()
        _, _, rep = extract_modality(extractor_for("video", "color"), clips, store=store)
        assert rep.n_extracted == 0 and ok.all() and ok2.all() and ok3.all()
        rows.append(_row("video cached re-run (hash + lookup)", time.perf_counter() - t, "s", f"{n} clips"))
    rows.append(_row("peak RSS after media", _rss_mb(), "MiB"))
    return rows


if __name__ == "__main__":
    import sys

    for r in run_media(quick=True) if "--media" in sys.argv else run(quick=True):
        print(r)
