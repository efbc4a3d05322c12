"""Item features from content: pretrained CNN / bag of visual words / colour histograms for images, sentence
embeddings / TF-IDF / LDA topics / averaged word vectors for text, behind one extractor protocol and a
content-hash cache.

    from fusionrec.features import extract_features
    feats = extract_features(ds, image="cnn", text="sentence")
    feats.dims  # {"image": 1280, "text": 384}

Heavy libraries (torch, onnxruntime, sentence-transformers, OpenCV, scikit-learn) load only when an extractor
runs.
"""

from fusionrec.features.base import (
    EXTRACTORS,
    IMAGE_EXTRACTORS,
    TEXT_EXTRACTORS,
    ExtractionReport,
    Extractor,
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
    "EXTRACTORS",
    "IMAGE_EXTRACTORS",
    "TEXT_EXTRACTORS",
    "ExtractionReport",
    "ExtractionResult",
    "Extractor",
    "FeatureStore",
    "extract_features",
    "extract_item_features",
    "extract_modality",
    "extractor_from_config",
    "get_extractor",
    "run_extraction",
]
