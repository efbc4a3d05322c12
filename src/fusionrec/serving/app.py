"""The HTTP API: ``create_app(artifact_path)`` returns a FastAPI application serving one artifact.

Endpoints (raw ids everywhere; JSON in and out; see ``/docs``):

- ``GET /healthz``, ``GET /version``;
- ``GET /users/{user_id}/recommendations?k=10&exclude_seen=true&explain=false``;
- ``POST /recommendations`` ``{"items": [...], "k": 10}``: an unknown user folded in from its items;
- ``GET /items/{item_id}`` and ``GET /items/{item_id}/similar?k=10&modality=image|text|all``;
- ``POST /items`` (multipart: ``id``, ``title``, ``text``, ``image`` file): a new item, recommendable at once
  and saved with the artifact;
- ``POST /interactions`` ``{"interactions": [{"user", "item", "timestamp"?}, ...]}``: events that happened
  after fitting; new users are created, every user in the batch is served from its whole history at once;
- ``DELETE /users/{user_id}``: forget a user (served model and artifact on disk).

Bad input never reaches a 500: unknown ids are 404 with what to do instead, invalid parameters 422, an
existing item id 409, an oversized upload 413 (checked while the body streams in, before it is parsed), an
image declaring too many pixels 413 (checked from its header, before decoding), a non-image upload 415, a
malformed request 400. With API keys configured (:mod:`fusionrec.serving.auth`) a request without a valid key
gets 401 and a read key on a mutating route 403. Every status is declared in ``/openapi.json`` with the body
it carries. Nothing is ever unpickled: artifacts are JSON + safetensors + npz without pickle.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fusionrec import __version__, recommend
from fusionrec.errors import (
    ConfigError,
    DataError,
    NotFittedError,
    TooLargeError,
    UnknownItemError,
    UnknownUserError,
)
from fusionrec.serving import catalog, schemas
from fusionrec.serving.auth import ApiKeyAuth, ApiKeys
from fusionrec.serving.state import (
    ConflictError,
    Ranked,
    ServingState,
    Snapshot,
    UnsupportedError,
    UnsupportedMediaError,
)
from fusionrec.serving.web import web_router

log = logging.getLogger("fusionrec")

ENV_ARTIFACT = "FUSIONREC_ARTIFACT"
ENV_MAX_UPLOAD_MB = "FUSIONREC_MAX_UPLOAD_MB"
ENV_INDEX = "FUSIONREC_INDEX"
ENV_NEW_ITEM_SHARE = "FUSIONREC_NEW_ITEM_SHARE"
ENV_WARM_UP = "FUSIONREC_WARM_UP"
# what POST /items accepts as a new id (checked again, after stripping, by the state)
ITEM_ID_PATTERN = r"^[^\x00-\x1f\x7f/]*[^\x00-\x1f\x7f/\s][^\x00-\x1f\x7f/]*$"

_STATUS: list[tuple[type[Exception], int]] = [
    (UnknownUserError, 404),
    (UnknownItemError, 404),
    (ConflictError, 409),
    (UnsupportedError, 409),
    (UnsupportedMediaError, 415),
    (TooLargeError, 413),
    (ConfigError, 422),
    (DataError, 422),
    (NotFittedError, 503),
]


def create_app(
    artifact_path: str | Path,
    *,
    max_upload_mb: float = 10.0,
    index: str = "auto",
    watch: bool = True,
    fast_path: bool = True,
    api_keys: ApiKeys | None = None,
    new_item_share: float = 0.0,
    warm_extractors: bool = True,
) -> FastAPI:
    """A FastAPI app serving the artifact at ``artifact_path``.

    Parameters
    ----------
    artifact_path
        Directory written by ``fusionrec fit`` (changes made through the API are saved back to it).
    max_upload_mb
        Largest request body accepted (POST /items uploads); larger ones get 413.
    index
        "auto"/"hnsw": faiss HNSW retrieval for inner-product models; "exact": score every item.
    watch
        Pick up changes other worker processes make to the artifact (one ``stat`` per request).
    fast_path
        Serve ``GET /users/{id}/recommendations`` by a lean route (same validation, about twice the
        throughput); False leaves it to the FastAPI route.
    api_keys
        Bearer keys guarding the mutating routes (and the reads, when read keys are given); None or empty:
        every route is open (``fusionrec serve`` allows that on loopback only).
    new_item_share
        Up to this share of every list (``floor(share * k)`` slots) goes to the user's best items added
        through ``POST /items`` (exploration; 0, the default: new items compete on their calibrated scores
        alone).
    warm_extractors
        Build the artifact's feature extractors (and export them to ONNX, cached on disk) now, so the first
        ``POST /items`` is as fast as the next ones.
    """
    if not max_upload_mb > 0:
        raise ConfigError(f"max_upload_mb must be positive; got {max_upload_mb}")
    state = ServingState(artifact_path, index=index, watch=watch, new_item_share=new_item_share)
    if warm_extractors:
        state.warm_up()
    app = FastAPI(
        title="fusionrec",
        version=__version__,
        description="Recommendations, similar items and cold start from a fusionrec artifact.",
    )
    app.state.serving = state
    app.add_middleware(BodyLimit, max_bytes=int(max_upload_mb * 1024 * 1024))
    keys = api_keys or ApiKeys()
    if keys.enabled:  # added last, so it runs first: a refused request costs nothing else
        app.add_middleware(ApiKeyAuth, keys=keys, is_write=is_mutating)
    app.state.api_keys = keys

    app.include_router(web_router(state))  # the page at / and its helper endpoints
    for exc_type, status in _STATUS:
        app.add_exception_handler(exc_type, _handler(status))
    app.add_exception_handler(OSError, _os_error)

    common = _common_responses(keys)
    post_common = {**common, 413: {"model": schemas.ErrorBody, "description": "request body too large"}}

    @app.get("/healthz", response_model=schemas.Health, tags=["meta"], responses=_common_responses(ApiKeys()))
    async def healthz() -> JSONResponse:
        snap = state.current()
        return JSONResponse({"status": "ok", "users": snap.n_users, "items": snap.n_items})

    @app.get("/version", response_model=schemas.Version, tags=["meta"], responses=common)
    async def version() -> JSONResponse:
        return JSONResponse(state.describe())

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=schemas.Recommendations,
        responses={**common, 404: {"model": schemas.ErrorBody}},
        tags=["recommendations"],
    )
    async def user_recommendations(
        user_id: Annotated[str, PathParam(description="raw user id")],
        k: Annotated[int, Query(ge=1, le=schemas.MAX_K)] = 10,
        exclude_seen: schemas.QueryBool = True,
        explain: schemas.QueryBool = False,
    ) -> JSONResponse:
        return _user_recommendations(state, user_id, k, exclude_seen, explain)

    if fast_path:
        # The busiest endpoint, served without FastAPI's per-request dependency machinery (about half the
        # server's time per request); same parameters, same checks, same 422 bodies as the route above,
        # which stays the documented one (and is what answers with fast_path=False).
        async def fast_user_recommendations(request: Request) -> JSONResponse:
            query = request.query_params
            errors = []
            k = _query_int(query, "k", 10, 1, schemas.MAX_K, errors)
            exclude_seen = _query_bool(query, "exclude_seen", True, errors)
            explain = _query_bool(query, "explain", False, errors)
            if errors:
                return JSONResponse({"detail": errors}, status_code=422)
            return _user_recommendations(state, request.path_params["user_id"], k, exclude_seen, explain)

        app.router.routes.insert(
            0,
            Route(
                "/users/{user_id}/recommendations",
                fast_user_recommendations,
                methods=["GET"],
                include_in_schema=False,
            ),
        )

    @app.post(
        "/recommendations",
        response_model=schemas.Recommendations,
        responses={**post_common, 404: {"model": schemas.ErrorBody}},
        tags=["recommendations"],
    )
    async def fold_in_recommendations(body: schemas.FoldInRequest) -> JSONResponse:
        snap = state.current()
        items = recommend.item_indices(snap.view, [str(i) for i in body.items])
        ranked = recommend.rank_fold_in(snap.view, items, body.k, exclude_seen=body.exclude_seen)
        return JSONResponse(_recs(snap, ranked, body.k, None, None))

    @app.get(
        "/items/{item_id}",
        response_model=schemas.ItemInfo,
        responses={**common, 404: {"model": schemas.ErrorBody}},
        tags=["items"],
    )
    async def item(item_id: str) -> JSONResponse:
        return JSONResponse(recommend.item_info(state.current().view, item_id))

    @app.get(
        "/items/{item_id}/similar",
        response_model=schemas.SimilarItems,
        responses={
            **common,
            404: {"model": schemas.ErrorBody},
            409: {"model": schemas.ErrorBody, "description": "the item has no content to compare by"},
        },
        tags=["items"],
    )
    async def similar(
        item_id: str,
        k: Annotated[int, Query(ge=1, le=schemas.MAX_K)] = 10,
        modality: Annotated[
            str, Query(max_length=100, description="a modality of this artifact, or 'all'")
        ] = "all",
    ) -> JSONResponse:
        snap = state.current()
        ranked = recommend.rank_similar(snap.view, recommend.item_index(snap.view, item_id), k, modality)
        body = {
            "item_id": item_id,
            "modality": modality,
            "source": ranked.source,
            "items": _items(snap, ranked, None),
        }
        return JSONResponse(body)

    @app.post(
        "/items",
        response_model=schemas.ItemCreated,
        status_code=201,
        responses={
            **post_common,
            409: {"model": schemas.ErrorBody},
            413: {
                "model": schemas.ErrorBody,
                "description": "upload too large, or an image with too many pixels",
            },
            415: {"model": schemas.ErrorBody},
        },
        tags=["items"],
    )
    async def add_item(
        item_id: Annotated[
            str,
            Form(
                alias="id", min_length=1, max_length=200, pattern=ITEM_ID_PATTERN, description="new item id"
            ),
        ],
        title: Annotated[str | None, Form(max_length=1000, pattern=r"^$|\S")] = None,
        text: Annotated[
            str | None,
            Form(
                max_length=100_000,
                pattern=r"^$|\S",
                description="text the text modality is made of (defaults to the title)",
            ),
        ] = None,
        image: Annotated[
            UploadFile | str | None, File(description="image file (JPEG, PNG, WebP, ...)")
        ] = None,
    ) -> JSONResponse:
        if isinstance(
            image, str
        ):  # a part sent without a filename: its bytes, as the form parser decoded them
            data: bytes | None = _form_field_bytes(image)
        else:
            data = await image.read() if image is not None else None
        if data is not None and not data:
            data = None
        # feature extraction (CNN / sentence model) is slow: keep it off the event loop
        out = await run_in_threadpool(catalog.add_item, state, item_id, title=title, text=text, image=data)
        return JSONResponse(out, status_code=201)

    @app.post(
        "/interactions",
        response_model=schemas.InteractionsApplied,
        responses={**post_common, 404: {"model": schemas.ErrorBody, "description": "an unknown item"}},
        tags=["users"],
    )
    async def add_interactions(body: schemas.InteractionsRequest) -> JSONResponse:
        events = body.interactions
        out = await run_in_threadpool(
            catalog.add_interactions,
            state,
            [str(e.user) for e in events],
            [str(e.item) for e in events],
            [e.timestamp for e in events],
        )
        return JSONResponse(out)

    @app.delete(
        "/users/{user_id}",
        response_model=schemas.UserForgotten,
        responses={
            **common,
            404: {"model": schemas.ErrorBody},
            409: {
                "model": schemas.ErrorBody,
                "description": "this model cannot forget a user; refit without it",
            },
        },
        tags=["users"],
    )
    async def forget(user_id: str) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(catalog.forget_user, state, user_id))

    _customise_openapi(app, keys, sorted(state.current().unit_features))
    return app


def is_mutating(method: str, path: str) -> bool:
    """Routes that change the artifact: they need a write key."""
    return method == "DELETE" or (method == "POST" and path.rstrip("/") in ("/items", "/interactions"))


def _common_responses(keys: ApiKeys) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        400: {"model": schemas.ErrorBody, "description": "malformed request"},
        422: {"model": schemas.ValidationErrorBody, "description": "invalid parameters"},
        503: {"model": schemas.ErrorBody, "description": "the artifact cannot be read or written right now"},
    }
    if keys.enabled:
        out[401] = {"model": schemas.ErrorBody, "description": "no valid API key"}
        out[403] = {"model": schemas.ErrorBody, "description": "a read key on a mutating route"}
    return out


def _customise_openapi(app: FastAPI, keys: ApiKeys, modalities: list[str]) -> None:
    """What the route signatures cannot say: bearer security on exactly the routes the middleware guards, the
    artifact's modality names, and that a new item needs some content (a text, a title or a non-empty image)."""
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = base_openapi()
        components = spec.setdefault("components", {})
        for name, schema in components.get("schemas", {}).items():
            if name.startswith("Body_add_item"):
                props = schema.get("properties", {})
                given = {
                    f: [v for v in props[f].get("anyOf", [props[f]]) if v.get("type") != "null"]
                    for f in props
                }
                for variant in given.get("image", []):
                    # a file part (clients and test generators read "binary" so), and an empty file is no image
                    variant.update(format="binary", minLength=1)
                # some content: a text or title with a non-space character (an empty field counts as absent)
                needs = {f: {**given[f][0], "pattern": r"\S"} for f in ("text", "title") if given.get(f)}
                needs.update({"image": given["image"][0]} if given.get("image") else {})
                schema["anyOf"] = [{"required": [f], "properties": {f: v}} for f, v in needs.items()]
        if keys.enabled:
            components["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "fusionrec API key"}
            }
        for path, ops in spec.get("paths", {}).items():
            for method, op in ops.items():
                for param in op.get("parameters", []):
                    if path == "/items/{item_id}/similar" and param.get("name") == "modality":
                        param["schema"]["enum"] = ["all", *modalities]
                responses = op.setdefault("responses", {})
                if path not in ("/healthz", "/version"):  # unknown ids
                    responses.setdefault(
                        "404",
                        {
                            "description": "an id the model does not know",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                            },
                        },
                    )
                for code, body in (
                    ("400", "ErrorBody"),
                    ("422", "ValidationErrorBody"),
                    ("503", "ErrorBody"),
                ):
                    # routes mounted from other modules (the web page's) answer these too
                    responses.setdefault(
                        code,
                        {
                            "description": {"400": "malformed request", "422": "invalid parameters"}.get(
                                code, "the artifact cannot be read or written right now"
                            ),
                            "content": {
                                "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                            },
                        },
                    )
                guarded = keys.enabled and path != "/healthz"
                guarded = guarded and (is_mutating(method.upper(), path) or keys.reads_need_key)
                if guarded:
                    op["security"] = [{"apiKey": []}]
                    for code in ("401", "403"):
                        responses.setdefault(
                            code,
                            {
                                "description": "no valid API key"
                                if code == "401"
                                else "a read key on a write route",
                                "content": {
                                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                                },
                            },
                        )
                else:
                    op.get("responses", {}).pop("401", None)
                    op.get("responses", {}).pop("403", None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` / multi-worker serving: settings come from the environment."""
    single_threaded_numerics()
    path = os.environ.get(ENV_ARTIFACT)
    if not path:
        raise ConfigError(f"set {ENV_ARTIFACT} to the artifact directory (or run `fusionrec serve ARTIFACT`)")
    app = create_app(
        path,
        max_upload_mb=float(os.environ.get(ENV_MAX_UPLOAD_MB, "10")),
        index=os.environ.get(ENV_INDEX, "auto"),
        api_keys=ApiKeys.from_sources(),
        new_item_share=float(os.environ.get(ENV_NEW_ITEM_SHARE, "0")),
        warm_extractors=os.environ.get(ENV_WARM_UP, "1") != "0",
    )
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Move everything allocated so far (modules, the loaded artifact) out of the garbage collector's sight:
    full collections then scan only per-request garbage, not a few hundred thousand long-lived objects,
    which otherwise shows up as tens-of-milliseconds pauses in the latency tail."""
    import gc

    gc.collect()
    gc.freeze()


def single_threaded_numerics() -> None:
    """One thread for faiss (OpenMP) and BLAS in this process: a server answers many small queries at once,
    and thread pools that wake (and spin) for each one only take CPU from the others."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover - faiss is a serve dependency
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


# ---------------------------------------------------------------------------------------------- helpers


def _user_recommendations(
    state: ServingState, user_id: str, k: int, exclude_seen: bool, explain: bool
) -> JSONResponse:
    snap = state.current()
    ranked = recommend.rank_user(
        snap.view, recommend.user_index(snap.view, user_id), k, exclude_seen=exclude_seen
    )
    explanations = recommend.explain(snap.view, ranked) if explain else None
    return JSONResponse(_recs(snap, ranked, k, user_id, explanations))


# what the OpenAPI document promises for a boolean query parameter: true or false, nothing else
_TRUE = {"true"}
_FALSE = {"false"}


def _query_error(error_type: str, name: str, raw: str, msg: str, **ctx: Any) -> dict[str, Any]:
    """One query-parameter error in pydantic's shape (keys in its order)."""
    error: dict[str, Any] = {"type": error_type, "loc": ["query", name], "input": raw}
    if ctx:
        error["ctx"] = ctx
    error["msg"] = msg
    return error


def _query_int(query, name: str, default: int, lo: int, hi: int, errors: list) -> int:
    """An integer query parameter checked as FastAPI/pydantic would, errors in their shape."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = "Input should be a valid integer, unable to parse string as an integer"
        errors.append(_query_error("int_parsing", name, raw, msg))
        return default
    if value < lo:
        msg = f"Input should be greater than or equal to {lo}"
        errors.append(_query_error("greater_than_equal", name, raw, msg, ge=lo))
    elif value > hi:
        msg = f"Input should be less than or equal to {hi}"
        errors.append(_query_error("less_than_equal", name, raw, msg, le=hi))
    return value


def _query_bool(query, name: str, default: bool, errors: list) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    low = raw.strip().lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    msg = "Input should be a valid boolean, unable to interpret input"
    errors.append(_query_error("bool_parsing", name, raw, msg))
    return default


def _form_field_bytes(value: str) -> bytes:
    """The bytes of a multipart part read as text: Starlette decodes UTF-8 and falls back to Latin-1 (which
    every image with a byte over 0x7f in its header, PNG and JPEG included, takes)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _items(snap: Snapshot, ranked: Ranked, explanations: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    raw = snap.art.item_ids.raw_ids
    titles = snap.titles
    out = []
    for j, (i, s) in enumerate(zip(ranked.items.tolist(), ranked.scores.tolist(), strict=True)):
        row: dict[str, Any] = {"item_id": str(raw[i]), "score": round(float(s), 6)}
        if titles is not None:
            row["title"] = titles[i]
        if explanations is not None:
            row["explanation"] = explanations[j]
        out.append(row)
    return out


def _recs(
    snap: Snapshot, ranked: Ranked, k: int, user_id: str | None, explanations: list[dict[str, Any]] | None
) -> dict[str, Any]:
    return {"user_id": user_id, "k": k, "source": ranked.source, "items": _items(snap, ranked, explanations)}


def _handler(status: int):
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handle


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("I/O error while serving %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {
            "detail": f"the server could not read or write its artifact ({exc}); nothing was "
            "changed, try again later"
        },
        status_code=503,
    )


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: by Content-Length up front, else while streaming.

    The body is counted as it arrives, so an oversized upload is never buffered or parsed; once the limit is
    passed the application sees a disconnect and whatever it answers is dropped in favour of the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length header"})
                    return
        if length is not None and length > self.max_bytes:
            await _send_json(send, 413, self._message(length))
            return
        seen = 0
        over = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    if not started:
                        await _send_json(send, 413, self._message(None))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the 413 has been sent; drop the application's own answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise

    def _message(self, length: int | None) -> dict[str, str]:
        limit = self.max_bytes / (1024 * 1024)
        got = f" ({length / (1024 * 1024):.1f} MB)" if length is not None else ""
        return {
            "detail": f"request body too large{got}; the limit is {limit:g} MB (fusionrec serve "
            "--max-upload-mb). Send a smaller image."
        }


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
