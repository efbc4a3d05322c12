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

from fusionrec.features.base import (
    AUDIO_EXTRACTORS,
    EXTRACTORS,
    IMAGE_EXTRACTORS,
    TEXT_EXTRACTORS,
    VIDEO_EXTRACTORS,
    ExtractionReport,
    Extractor,
    extractor_for,
    extractor_from_config,
    get_extractor,
)
from fusionrec.features.extract import (
    ExtractionResult,
    extract_features,
    extract_item_features,
    extract_modality,
    run_extraction,
)
from fusionrec.features.store import FeatureStore

__all__ = [
    "AUDIO_EXTRACTORS",
    "EXTRACTORS",
    "IMAGE_EXTRACTORS",
    "TEXT_EXTRACTORS",
    "VIDEO_EXTRACTORS",
    "ExtractionReport",
    "ExtractionResult",
    "Extractor",
    "FeatureStore",
    "extract_features",
    "extract_item_features",
    "extract_modality",
    "extractor_for",
    "extractor_from_config",
    "get_extractor",
    "run_extraction",
]
