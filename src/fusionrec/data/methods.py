"""Names of the data layer's choices, importable without numpy or pandas (the CLI builds its parser from them)."""

SPLITS = ("ratio", "temporal", "global-temporal", "loo", "cold-items", "given")
