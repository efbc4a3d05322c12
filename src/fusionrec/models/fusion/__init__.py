"""The fusion toolkit, used by the content-aware models only.

- ``content``: fit-time feature normalisation replayed on new items (:class:`ContentMixin`), modality choice;
- ``encoders``: per-modality encoders (linear map of pretrained features, CNN over pixels, LSTM over tokens);
- ``operators``: torch modules that fuse per-modality vectors (modality attention);
- ``scoring``: numpy helpers (per-user z-scores and weight search for late fusion).
"""
