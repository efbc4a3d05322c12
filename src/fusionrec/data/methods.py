"""Names of the data layer's choices, importable without numpy or pandas (the CLI builds its parser from them)."""

SPLITS = ("ratio", "temporal", "global-temporal", "loo", "cold-items", "given")

#: the loaders' names in detection order (``fusionrec.data.loaders.LOADERS`` has one entry for each)
FORMATS = ("demo", "movielens", "recbole", "mmrec", "amazon", "csv", "parquet")
