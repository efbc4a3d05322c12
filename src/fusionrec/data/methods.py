"""Names of the data layer's choices, importable without numpy or pandas (the CLI builds its parser from them)."""

SPLITS = ("ratio", "temporal", "global-temporal", "loo", "cold-items", "given")

#: the loaders' names in detection order (``fusionrec.data.loaders.LOADERS`` has one entry for each)
FORMATS = ("demo", "movielens", "recbole", "mmrec", "amazon", "csv", "parquet")

#: what a data set is fitted for: ranking (implicit, 1.0 per interaction) or rating (rating values kept)
TASKS = ("ranking", "rating")

#: formats ``fusionrec export`` writes (``fusionrec.data.export.EXPORTERS`` has one writer for each)
EXPORT_FORMATS = ("mmrec", "recbole")
