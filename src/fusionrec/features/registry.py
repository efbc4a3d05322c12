"""The extractor registry: names, kinds and where each class lives (imported only when one is made).

Light on purpose: the CLI builds its choices from it without importing numpy. Adding an extractor is one file
plus one line here.
"""

from __future__ import annotations

EXTRACTORS: dict[str, tuple[str, str]] = {
    "cnn": ("fusionrec.features.image_cnn:CNNExtractor", "image"),
    "bovw": ("fusionrec.features.image_bovw:BoVWExtractor", "image"),
    "color": ("fusionrec.features.image_color:ColorHistogramExtractor", "image"),
    "sentence": ("fusionrec.features.text_sentence:SentenceExtractor", "text"),
    "tfidf": ("fusionrec.features.text_tfidf:TfidfExtractor", "text"),
    "lda": ("fusionrec.features.text_topics:LdaExtractor", "text"),
    "wordvec": ("fusionrec.features.text_wordvec:WordVecExtractor", "text"),
    "mfcc": ("fusionrec.features.audio_mfcc:MfccExtractor", "audio"),
    "frames": ("fusionrec.features.video_frames:FramesExtractor", "video"),
}

KINDS = ("image", "text", "audio", "video")
IMAGE_EXTRACTORS = tuple(n for n, (_, k) in EXTRACTORS.items() if k == "image")
TEXT_EXTRACTORS = tuple(n for n, (_, k) in EXTRACTORS.items() if k == "text")
AUDIO_EXTRACTORS = tuple(n for n, (_, k) in EXTRACTORS.items() if k == "audio")
#: ``video`` also takes every image extractor's name: frames through that extractor, pooled
VIDEO_EXTRACTORS = tuple(n for n, (_, k) in EXTRACTORS.items() if k == "video") + IMAGE_EXTRACTORS


def extractor_choices(kind: str) -> tuple[str, ...]:
    """Names that ``extractor_for`` accepts for ``kind`` (the CLI's choices)."""
    return {
        "image": IMAGE_EXTRACTORS,
        "text": TEXT_EXTRACTORS,
        "audio": AUDIO_EXTRACTORS,
        "video": VIDEO_EXTRACTORS,
    }[kind]
