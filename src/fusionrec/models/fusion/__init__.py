"""The fusion toolkit, used by the content-aware models only.

- ``content``: fit-time feature normalisation replayed on new items (:class:`ContentMixin`), modality choice;
- ``operators``: torch modules that fuse per-modality vectors (learnt weighted sum, modality attention);
- ``scoring``: numpy helpers (per-user z-scores and weight search for late fusion, softmax for serving).
"""
