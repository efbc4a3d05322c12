"""`fusionrec models`: every model, its parameters with defaults, and the modalities it needs."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args, emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list models with their parameters and required modalities")
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    from fusionrec.models.registry import describe_models

    info = describe_models()
    lines = []
    for m in info:
        needs = (
            ", ".join(m["requires_features"])
            if m["requires_features"]
            else ("optional features" if m["uses_features"] else "interactions only")
        )
        needs = needs.replace("*", "any modality")
        flags = " [cold items]" if m["supports_cold_items"] else ""
        flags += " [ratings]" if m["task"] == "rating" else ""
        lines.append(f"{m['name']:<14} {m['summary']}{flags}")
        lines.append(f"{'':<14} needs: {needs}")
        if m["params"]:
            lines.append(f"{'':<14} params: " + ", ".join(f"{k}={v!r}" for k, v in m["params"].items()))
    emit(args, info, "\n".join(lines))
    return 0
