"""Names of the data layer's choices, importable without numpy or pandas (the CLI builds its parser from them)."""

SPLITS = ("ratio", "temporal", "global-temporal", "loo", "cold-items", "given")

#: The loader registry, in detection order: format name → ``"module:Loader instance"`` (imported only when data
#: is loaded; ``fusionrec.data.loaders.LOADERS`` holds the objects). Adding a format is its module plus one line.
LOADER_PATHS = {
    "demo": "fusionrec.data.loaders.movielens:DEMO",
    "movielens": "fusionrec.data.loaders.movielens:LOADER",
    "recbole": "fusionrec.data.loaders.recbole:LOADER",
    "mmrec": "fusionrec.data.loaders.mmrec:LOADER",
    "amazon": "fusionrec.data.loaders.amazon:LOADER",
    "csv": "fusionrec.data.loaders.table:CSV",
    "parquet": "fusionrec.data.loaders.table:PARQUET",
}
FORMATS = tuple(LOADER_PATHS)

#: what a data set is fitted for: ranking (implicit, 1.0 per interaction) or rating (rating values kept)
TASKS = ("ranking", "rating")

#: formats ``fusionrec export`` writes (``fusionrec.data.export.EXPORTERS`` has one writer for each)
EXPORT_FORMATS = ("mmrec", "recbole")
