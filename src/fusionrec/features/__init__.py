"""Item features from content: pretrained CNN / bag of visual words / colour histograms for images, sentence
embeddings / TF-IDF / LDA topics / averaged word vectors for text, MFCC statistics for audio, pooled per-frame
image features for video (and its soundtrack through the audio extractor), behind one extractor protocol and
a content-hash cache.

    from fusionrec.features import extract_features
    feats = extract_features(ds, image="cnn", text="sentence", audio="mfcc", video="cnn", soundtrack="mfcc")
    feats.dims  # {"image": 1280, "text": 384, "audio": 200, "video": 2560, "soundtrack": 200}

Heavy libraries (torch, onnxruntime, sentence-transformers, OpenCV, scikit-learn, PyAV) load only when an
extractor runs.
"""

from __future__ import annotations

from typing import Any

from fusionrec.lazy import lazy_attribute

# names are imported on first use, so the light registry (the CLI's choices) loads without numpy
_EXPORTS = {
    "AUDIO_EXTRACTORS": "fusionrec.features.registry",
    "EXTRACTORS": "fusionrec.features.registry",
    "IMAGE_EXTRACTORS": "fusionrec.features.registry",
    "TEXT_EXTRACTORS": "fusionrec.features.registry",
    "VIDEO_EXTRACTORS": "fusionrec.features.registry",
    "ExtractionReport": "fusionrec.features.base",
    "Extractor": "fusionrec.features.base",
    "extractor_for": "fusionrec.features.base",
    "extractor_from_config": "fusionrec.features.base",
    "get_extractor": "fusionrec.features.base",
    "ExtractionResult": "fusionrec.features.extract",
    "extract_features": "fusionrec.features.extract",
    "extract_item_features": "fusionrec.features.extract",
    "extract_modality": "fusionrec.features.extract",
    "run_extraction": "fusionrec.features.extract",
    "FeatureStore": "fusionrec.features.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)
