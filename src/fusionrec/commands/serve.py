"""`fusionrec serve`: the HTTP API over an artifact (FastAPI + uvicorn)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve an artifact over HTTP (recommendations, similar items, new items, forget users)",
        description="Serve ARTIFACT over HTTP. Endpoints: GET /healthz, GET /version, "
        "GET /users/{id}/recommendations, POST /recommendations, GET /items/{id}, GET /items/{id}/similar, "
        "POST /items, DELETE /users/{id}; interactive docs at /docs. Items added and users forgotten through "
        "the API are saved back to ARTIFACT.",
    )
    p.add_argument("artifact", help="artifact directory written by `fusionrec fit`")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (they share changes through the artifact on disk)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="largest accepted upload (default: 10 MB)"
    )
    p.add_argument(
        "--index",
        choices=["auto", "hnsw", "exact"],
        default="auto",
        help="retrieval for inner-product models: faiss HNSW (auto) or exact scoring",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--quiet", action="store_true", help="only warnings and errors")


def run(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from fusionrec.errors import ConfigError
    from fusionrec.serving.app import (
        ENV_ARTIFACT,
        ENV_INDEX,
        ENV_MAX_UPLOAD_MB,
        create_app,
        freeze_startup_objects,
        single_threaded_numerics,
    )

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1; got {args.workers}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535; got {args.port}")
    level = "warning" if args.quiet else args.log_level
    single_threaded_numerics()
    # load once in this process first: a bad artifact fails here with its message, not in every worker
    app = create_app(args.artifact, max_upload_mb=args.max_upload_mb, index=args.index)
    if args.workers == 1:
        freeze_startup_objects()
        uvicorn.run(app, host=args.host, port=args.port, log_level=level)
        return 0
    del app
    os.environ[ENV_ARTIFACT] = os.path.abspath(args.artifact)
    os.environ[ENV_MAX_UPLOAD_MB] = str(args.max_upload_mb)
    os.environ[ENV_INDEX] = args.index
    uvicorn.run(
        "fusionrec.serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=level,
    )
    return 0
