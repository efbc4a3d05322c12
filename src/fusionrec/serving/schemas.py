"""Request and response bodies of the HTTP API (pydantic), as shown in the OpenAPI page at ``/docs``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from fusionrec.interactions import MAX_USER_ID_LENGTH, USER_ID_PATTERN

MAX_K = 1000
MAX_HISTORY = 5000
MAX_INTERACTIONS = 10_000  # events per POST /interactions
# bound of integer ids and times: exact as a double too, so clients comparing in floating point agree
MAX_JSON_ID = 10**15


def _query_bool(value: Any) -> Any:
    """A boolean query parameter is ``true`` or ``false``, as the OpenAPI document says; ``0``/``yes`` are not."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        raise ValueError("Input should be a valid boolean, unable to interpret input")
    return value


QueryBool = Annotated[bool, BeforeValidator(_query_bool)]


def _json_int(value: Any) -> Any:
    """An integer as JSON Schema has it: ``3`` and ``3.0`` are integers; ``true``, ``"3"`` and ``3.5`` are not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be a valid integer, got a number with a fractional part")
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_int)]


class FoldInRequest(BaseModel):
    """An unknown user, known by the raw ids of items it interacted with (most recent first or any order)."""

    model_config = ConfigDict(extra="forbid")

    items: list[str | JsonInt] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="raw item ids (strings or integers) the user interacted with; empty = most popular items",
    )
    k: JsonInt = Field(10, ge=1, le=MAX_K, description="number of recommendations")
    exclude_seen: StrictBool = Field(True, description="leave the given items out of the recommendations")


class Interaction(BaseModel):
    """One event: ``user`` interacted with ``item`` (at ``timestamp``)."""

    model_config = ConfigDict(extra="forbid")

    # an integer id becomes its decimal string, which must fit the length limit too
    user: (
        Annotated[str, Field(min_length=1, max_length=MAX_USER_ID_LENGTH, pattern=USER_ID_PATTERN)]
        | Annotated[int, Field(ge=-MAX_JSON_ID, le=MAX_JSON_ID), BeforeValidator(_json_int)]
    ) = Field(description="raw user id (string or integer); a user the model does not know is created")
    item: Annotated[str, Field(min_length=1, max_length=200)] | JsonInt = Field(
        description="raw item id the model knows (add new items with POST /items first)"
    )
    timestamp: JsonInt | None = Field(
        None, ge=-MAX_JSON_ID, le=MAX_JSON_ID, description="seconds since the epoch (default: now)"
    )


class InteractionsRequest(BaseModel):
    """A batch of events, applied all together or (on any bad event) not at all."""

    model_config = ConfigDict(extra="forbid")

    interactions: list[Interaction] = Field(min_length=1, max_length=MAX_INTERACTIONS)


class InteractionsApplied(BaseModel):
    events: int = Field(description="events in the batch")
    new_interactions: int = Field(description="(user, item) pairs not seen before")
    users_created: int = Field(description="users the model did not know")
    users_updated: int = Field(description="known users whose lists were refreshed")
    users: int
    revision: int


class ScoredItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    explanation: dict[str, Any] | None = None


class Recommendations(BaseModel):
    user_id: str | None = None
    k: int
    source: str = Field(description="how the list was made: ann, exact, fold-in (...), popularity (...)")
    items: list[ScoredItem]


class SimilarItems(BaseModel):
    item_id: str
    modality: str
    source: str
    items: list[ScoredItem]


class ItemInfo(BaseModel):
    item_id: str
    title: str | None = None
    added: bool = Field(description="added at run time with POST /items")
    interactions: int = Field(description="training interactions (0 for added items)")
    modalities: list[str] = Field(description="modalities with content for this item")


class ItemCreated(BaseModel):
    item_id: str
    title: str
    modalities: list[str] = Field(description="modalities extracted from the upload")
    missing_modalities: list[str] = Field(description="modalities the upload gave no content for (imputed)")
    items: int
    revision: int


class UserForgotten(BaseModel):
    user_id: str
    forgotten: bool
    users: int
    revision: int


class Health(BaseModel):
    status: str
    users: int
    items: int


class Version(BaseModel):
    package_version: str
    artifact_package_version: str | None = None
    model: str
    params: dict[str, Any]
    data_fingerprint: str | None = None
    data_name: str | None = None
    revision: int
    users: int
    items: int
    added_items: int
    modalities: list[str]
    index: str
    new_item_share: float = 0.0


class ErrorBody(BaseModel):
    detail: str = Field(description="what went wrong and what to do")


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorBody(BaseModel):
    """422: request validation issues (a list), or one message for a value the model or data rejects."""

    detail: list[ValidationIssue] | str
