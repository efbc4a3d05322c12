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
    p.add_argument(
        "--api-key-file",
        help="file of API keys, one per line: write:KEY or read:KEY (also $FUSIONREC_API_KEY, a write key, "
        "and $FUSIONREC_READ_API_KEY); mutating routes then need a write key, reads a key if read keys exist",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening on a non-loopback address without any API key (every route open to the network)",
    )
    p.add_argument(
        "--max-image-mpx",
        type=float,
        help="refuse uploaded images declaring more than this many megapixels (default 40; "
        "$FUSIONREC_MAX_IMAGE_PIXELS)",
    )
    p.add_argument(
        "--allow-backbone",
        action="append",
        default=[],
        metavar="MODULE:CALLABLE",
        help="trust this custom CNN backbone named by the artifact's feature extractors (repeatable); "
        "without it an artifact naming Python code is refused",
    )
    p.add_argument(
        "--new-item-share",
        type=float,
        default=0.0,
        help="reserve up to this share of every list (floor(share * k) slots) for items added through "
        "POST /items, ranked by their calibrated scores (default 0: none reserved)",
    )
    p.add_argument(
        "--no-warm-up",
        action="store_true",
        help="skip building the feature extractors and the content map at start (faster start; the first "
        "POST /items then pays for them)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--quiet", action="store_true", help="only warnings and errors")


def run(args: argparse.Namespace) -> int:
    return serve_artifact(
        args.artifact,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        index=args.index,
        log_level="warning" if args.quiet else args.log_level,
        api_key_file=args.api_key_file,
        insecure=args.insecure,
        max_image_mpx=args.max_image_mpx,
        allow_backbones=args.allow_backbone,
        new_item_share=args.new_item_share,
        warm_up=not args.no_warm_up,
    )


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve_artifact(
    artifact: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    max_upload_mb: float = 10.0,
    index: str = "auto",
    log_level: str = "info",
    api_key_file: str | None = None,
    insecure: bool = False,
    max_image_mpx: float | None = None,
    allow_backbones: list[str] | None = None,
    print_examples: bool = False,
    new_item_share: float = 0.0,
    warm_up: bool = True,
) -> int:
    """Serve ``artifact`` over HTTP until interrupted (the body of ``fusionrec serve``); returns the exit code."""
    import os

    import uvicorn

    from fusionrec.errors import ConfigError
    from fusionrec.features.image_cnn import ENV_ALLOW_BACKBONES, allow_backbone
    from fusionrec.features.images import ENV_MAX_PIXELS
    from fusionrec.serving.app import (
        ENV_ARTIFACT,
        ENV_INDEX,
        ENV_MAX_UPLOAD_MB,
        ENV_NEW_ITEM_SHARE,
        ENV_WARM_UP,
        create_app,
        freeze_startup_objects,
        single_threaded_numerics,
    )
    from fusionrec.serving.auth import ENV_API_KEY_FILE, ApiKeys

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1; got {workers}")
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535; got {port}")
    keys = ApiKeys.from_sources(api_key_file)
    if not keys.enabled and not is_loopback(host) and not insecure:
        raise ConfigError(
            f"--host {host} is reachable from other machines and no API key is configured; give "
            "--api-key-file PATH (or set FUSIONREC_API_KEY), or pass --insecure to serve every route openly"
        )
    if max_image_mpx is not None:
        if not max_image_mpx > 0:
            raise ConfigError(f"--max-image-mpx must be positive; got {max_image_mpx}")
        os.environ[ENV_MAX_PIXELS] = str(int(max_image_mpx * 1e6))  # read per image, also by workers
    for spec in allow_backbones or []:
        allow_backbone(spec)
    if allow_backbones:
        os.environ[ENV_ALLOW_BACKBONES] = ",".join(allow_backbones)
    single_threaded_numerics()
    # load once in this process first: a bad artifact fails here with its message, not in every worker
    multi = workers > 1  # then each worker warms its own extractors (the ONNX exports are shared on disk)
    app = create_app(
        artifact,
        max_upload_mb=max_upload_mb,
        index=index,
        api_keys=keys,
        new_item_share=new_item_share,
        warm_extractors=warm_up and not multi,
    )
    url = f"http://{host}:{port}"
    if print_examples:
        print(
            f"serving {artifact} at {url} (interactive docs: {url}/docs); try:\n"
            f"  curl '{url}/users/1/recommendations?k=5'\n"
            f"  curl '{url}/items/1/similar?k=5'\n"
            "press Ctrl-C to stop",
            flush=True,
        )
    if workers == 1:
        freeze_startup_objects()
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return 0
    del app
    os.environ[ENV_ARTIFACT] = os.path.abspath(artifact)
    os.environ[ENV_MAX_UPLOAD_MB] = str(max_upload_mb)
    os.environ[ENV_INDEX] = index
    os.environ[ENV_NEW_ITEM_SHARE] = str(new_item_share)
    os.environ[ENV_WARM_UP] = "1" if warm_up else "0"
    if api_key_file:
        os.environ[ENV_API_KEY_FILE] = os.path.abspath(api_key_file)
    uvicorn.run(
        "fusionrec.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )
    return 0
