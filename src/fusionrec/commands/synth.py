"""`fusionrec synth`: write a synthetic MMRec directory of any size (power-law users/items, features)."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args, emit


def _modalities(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, dim = part.partition(":")
        if not sep or not name or not dim.isdigit() or int(dim) <= 0:
            raise argparse.ArgumentTypeError(f"bad modality {part!r}; write NAME:DIM, e.g. image:64,text:32")
        out[name] = int(dim)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic data set (MMRec directory) of a given size")
    p.add_argument("--users", type=int, default=10_000, help="number of users")
    p.add_argument("--items", type=int, default=2_000, help="number of items")
    p.add_argument("--interactions", type=int, default=200_000, help="target number of interactions")
    p.add_argument(
        "--modalities", type=_modalities, default={"image": 64, "text": 32}, help="NAME:DIM,... ('' for none)"
    )
    p.add_argument(
        "--feature-kind",
        choices=["clustered", "random"],
        default="clustered",
        help="features with or without signal",
    )
    p.add_argument("--clusters", type=int, default=50, help="item clusters users prefer")
    p.add_argument("--affinity", type=float, default=0.6, help="share of interactions from a user's cluster")
    p.add_argument("--min-per-user", type=int, default=3, help="interactions every user has at least")
    p.add_argument("--float16", action="store_true", help="store features as float16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("out", help="output directory")
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    import time

    from fusionrec.data.synth import SynthSpec, write_synthetic

    spec = SynthSpec(
        n_users=args.users,
        n_items=args.items,
        n_interactions=args.interactions,
        modalities=args.modalities,
        feature_kind=args.feature_kind,
        clusters=args.clusters,
        affinity=args.affinity,
        min_per_user=args.min_per_user,
        float16=args.float16,
        seed=args.seed,
    )
    t0 = time.perf_counter()
    out = write_synthetic(spec, args.out)
    summary = {"out": str(out), "seconds": round(time.perf_counter() - t0, 2), **vars(spec)}
    emit(args, summary, f"wrote {out} in {summary['seconds']} s")
    return 0
