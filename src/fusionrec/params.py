"""Parameter values checked against a constructor's signature: one rule for the CLI, artifacts and manifests.

A value read from a file or typed on the command line must have the type its parameter is annotated with
(``factors: int`` takes ``64``, not ``"abc"`` nor ``True``); the CLI converts text to that type first.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "None": (type(None),),
    "list": (list, tuple),
    "tuple": (list, tuple),
    "Sequence": (list, tuple),
    "dict": (dict,),
    "Mapping": (dict,),
}


def allowed_types(param: inspect.Parameter) -> tuple[type, ...] | None:
    """The Python types a value of ``param`` may have, from its annotation (or default); None: unchecked."""
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        default = param.default
        if default is inspect.Parameter.empty or default is None:
            return None
        return (int, float) if type(default) is float else (type(default),)
    text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
    out: list[type] = []
    for part in str(text).split("|"):
        base = part.strip().split("[", 1)[0].rsplit(".", 1)[-1]
        if base not in _TYPES:
            return None  # Any, callables, classes: left to the constructor
        out.extend(_TYPES[base])
    return tuple(out)


def type_ok(value: Any, allowed: tuple[type, ...] | None) -> bool:
    if allowed is None:
        return True
    if isinstance(value, bool) and bool not in allowed:
        return False  # True is an int to Python, never a factor count to us
    return isinstance(value, allowed)


def describe(param: inspect.Parameter) -> str:
    ann = param.annotation
    if ann is inspect.Parameter.empty:
        return type(param.default).__name__
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def type_errors(params: dict[str, Any], signature: inspect.Signature) -> list[str]:
    """``"factors='abc' (a str; expected int)"`` for each value whose type does not fit its parameter."""
    out = []
    for key, value in params.items():
        p = signature.parameters.get(key)
        if p is None:
            continue
        if not type_ok(value, allowed_types(p)):
            out.append(f"{key}={value!r} (a {type(value).__name__}; expected {describe(p)})")
    return out


class CliText(str):
    """A parameter value as typed on the command line: :func:`convert_cli` turns it into its parameter's type
    where the constructor is known (``--param factors=64`` → 64; ``--param factors=abc`` → an error)."""


def convert_cli(params: dict[str, Any], signature: inspect.Signature, owner: str) -> dict[str, Any]:
    """``params`` with every :class:`CliText` value converted by its parameter's annotation.

    Raises ``ValueError`` naming ``owner``, the parameter and the expected type when a text does not convert.
    """
    out = {}
    for key, value in params.items():
        if isinstance(value, CliText):
            try:
                value = convert_text(str(value), signature.parameters.get(key))
            except ValueError as e:
                raise ValueError(f"{owner} parameter {key}: {e}") from None
        out[key] = value
    return out


def convert_text(text: str, param: inspect.Parameter | None) -> Any:
    """A command-line value as the type its parameter wants (JSON-ish when the type is unknown).

    ``"64"`` → 64 for ``factors: int``; ``"1e-3"`` → 0.001 for a float; ``"yes"`` → True for a bool;
    ``"a,b"`` → ``["a", "b"]`` for a list; ``"none"`` → None where None is allowed. Raises ``ValueError``
    with the expected type when the text cannot be that type.
    """
    allowed = allowed_types(param) if param is not None else None
    low = text.strip().lower()
    if allowed is None:
        return json_ish(text)
    if low in ("none", "null") and type(None) in allowed:
        return None
    if bool in allowed and low in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return low in ("true", "yes", "1", "on")
    if int in allowed and float not in allowed:
        try:
            return int(text)
        except ValueError:
            pass
    if float in allowed:
        try:
            value = json.loads(text)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
        except json.JSONDecodeError:
            pass
    if str in allowed and "," not in text and not text.lstrip().startswith(("[", "{")):
        return text  # "ndcg@20" for ``metric: str | Sequence[str]`` stays one name
    if dict in allowed or list in allowed:
        value = json_ish(text)
        if isinstance(value, str) and list in allowed:
            value = [value]
        if type_ok(value, allowed):
            return value
    if str in allowed:
        return text
    assert param is not None
    raise ValueError(f"{text!r} is not a valid {describe(param)}")


def json_ish(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    if "," in value:
        return [json_ish(v) for v in value.split(",") if v]
    return value


def metric_list(value: Any) -> list[str]:
    """The metric names a parameter holds: ``"recall@20,ndcg@20"``, a list of such strings, or one name."""
    parts = [value] if isinstance(value, str) else list(value or [])
    return [name.strip() for part in parts for name in str(part).split(",") if name.strip()]
