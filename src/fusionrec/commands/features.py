"""`fusionrec features`: item features from images, texts, audio and video, written where models train on them."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_data_args, add_output_args, add_split_args, emit

# modality → (extractor kind, default extractor, help); the choices come from the extractor registry
MODALITIES = {
    "image": ("image", "cnn", "item images"),
    "text": ("text", "sentence", "item texts"),
    "audio": ("audio", "none", "item audio files (audio/{id}.wav or an audio column)"),
    "video": (
        "video",
        "none",
        "item video files (videos/{id}.mp4 or a video column); an image extractor's name samples frames "
        "through it",
    ),
    "soundtrack": ("audio", "auto", "the videos' soundtracks; auto: the --audio extractor, or mfcc"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from fusionrec.features.registry import extractor_choices

    p = sub.add_parser(
        "features",
        help="extract item image/text/audio/video features (cached) and write an MMRec directory with them",
        description="Extract item features and write --out as a full MMRec atomic directory (interactions "
        "with their split, id maps, <modality>_feat.npy + _mask.npy, items.csv, manifest.json) that --data "
        "reads back; "
        "with --features-only, write just the feature files (attach them with --features DIR). Re-runs only "
        "extract items whose content changed.",
    )
    add_data_args(p)
    add_split_args(p)
    for modality, (kind, default, what) in MODALITIES.items():
        extra = ("auto",) if default == "auto" else ()
        p.add_argument(
            f"--{modality}",
            choices=(*extractor_choices(kind), "none", *extra),
            default=default,
            help=f"extractor for {what} (default: {default})",
        )
    for modality in MODALITIES:
        p.add_argument(
            f"--{modality}-name", default=modality, help=f"modality name of the {modality} features"
        )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extractor parameter (repeatable); prefix image., text., audio., video. or soundtrack. to "
        "target one, e.g. --param arch=resnet18 --param weights=r18.pth, --param text.svd_dims=128 or "
        "--param video.fps=2",
    )
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument(
        "--features-only",
        action="store_true",
        help="write only the feature files (items.csv, <modality>_feat.npy, _mask.npy, manifest.json)",
    )
    p.add_argument("--cache", help="feature cache directory (default: ~/.cache/fusionrec/features)")
    p.add_argument("--no-cache", action="store_true", help="extract everything, write no cache")
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="extract only part I of N into the cache (0-based; a run without --shard then writes OUT); "
        "under torchrun every rank takes its part and rank 0 writes OUT",
    )
    add_output_args(p)


def route_params(raw: dict, extractors: dict[str, str | None]) -> dict[str, dict]:
    """Split ``--param`` values between the chosen extractors (by ``modality.`` prefix, else by who takes
    them); ``extractors`` maps modality → extractor name (None: not extracted)."""
    from fusionrec.errors import ConfigError
    from fusionrec.features.base import accepted_params, extractor_kind

    accepts: dict[str, set[str]] = {}
    for modality, name in extractors.items():
        if name is None:
            continue
        ok = set(accepted_params(name))
        if MODALITIES[modality][0] == "video":  # frames through an image extractor: both take parameters
            image = name if extractor_kind(name) == "image" else "cnn"
            ok |= set(accepted_params("frames")) | set(accepted_params(image))
        accepts[modality] = ok
    out: dict[str, dict] = {m: {} for m in extractors}
    for key, value in raw.items():
        side, dot, rest = key.partition(".")
        if dot and side in MODALITIES:
            out[side][rest] = value
            continue
        takers = [m for m, ok in accepts.items() if key in ok]
        if not takers:
            chosen = "; ".join(f"{m} {extractors[m]}: {sorted(ok)}" for m, ok in accepts.items())
            raise ConfigError(f"--param {key}: no chosen extractor accepts it ({chosen})")
        for m in takers:
            out[m][key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fusionrec.commands._common import load_data, make_split, parse_params
    from fusionrec.data.export import export_mmrec
    from fusionrec.data.feature_dir import update_manifest, write_feature_dir
    from fusionrec.features.extract import run_extraction

    chosen: dict[str, str | None] = {
        m: (None if getattr(args, m) == "none" else getattr(args, m)) for m in MODALITIES
    }
    if chosen["soundtrack"] == "auto":
        chosen["soundtrack"] = (chosen["audio"] or "mfcc") if chosen["video"] else None
    if not any(chosen.values()):
        from fusionrec.errors import ConfigError

        raise ConfigError("nothing to extract: every modality is none (--image, --text, --audio, --video)")
    params = route_params(parse_params(args.param), chosen)
    ds = load_data(args)
    cache = False if args.no_cache else args.cache
    kwargs = {}
    for m, name in chosen.items():
        kwargs[m] = name
        kwargs[f"{m}_params"] = params[m]
        kwargs[f"{m}_name"] = getattr(args, f"{m}_name")
    shard, world = _shard(args.shard)
    if shard is not None:
        part = run_extraction(ds, cache=cache, show_progress=not args.quiet, shard=shard, **kwargs)
        n_done = sum(r.n_extracted for r in part.reports.values())
        if not world.distributed:
            emit(
                args,
                {"shard": list(shard), "extracted": n_done},
                f"shard {shard[0]}/{shard[1]}: extracted {n_done} row(s) into the cache; "
                f"run again without --shard to write {args.out}",
            )
            return 0
        from fusionrec.distributed import barrier

        barrier()  # every part is in the cache
        if not world.is_main:
            return 0
    result = run_extraction(ds, cache=cache, show_progress=not args.quiet, **kwargs)
    out = Path(args.out)
    if args.features_only:
        write_feature_dir(out, result.features, ds.item_ids.to_list(), manifest=result.manifest())
    else:
        merged = ds.features
        for name in result.features:
            merged.add(name, result.features[name], result.features.mask(name))
            # a replaced modality keeps no learned state of the extractor that made it before
            merged.extractor_state = {
                k: v for k, v in merged.extractor_state.items() if k.split("/")[0] != name
            }
        merged.extractors.update(result.features.extractors)
        merged.extractor_state.update(result.features.extractor_state)
        split = make_split(ds, args)
        export_mmrec(ds.with_features(merged), split, out)
        update_manifest(out, {**result.manifest(), "split": split.name})
    reports = {name: r.to_dict() for name, r in result.reports.items()}
    payload = {"out": str(out), "items": ds.n_items, "modalities": result.features.dims, "reports": reports}
    lines = [r.summary() for r in result.reports.values()]
    for r in result.reports.values():
        for f in r.failures[:10]:
            lines.append(f"  {r.modality} unreadable: {f.source}: {f.reason}")
        if r.n_failed > 10:
            lines.append(f"  ... and {r.n_failed - 10} more (see manifest.json)")
    lines.append(
        f"wrote {out} ({'features only' if args.features_only else 'MMRec directory'}: "
        + ", ".join(f"{k} {v}-d" for k, v in result.features.dims.items())
        + ")"
    )
    emit(args, payload, "\n".join(lines))
    return 0


def _shard(text: str | None):
    """(part, world): from ``--shard I/N``, else from torchrun's ranks, else no shard."""
    from fusionrec.distributed import init, world
    from fusionrec.errors import ConfigError

    w = world()
    if text:
        i, sep, n = text.partition("/")
        if not sep or not i.strip().isdigit() or not n.strip().isdigit() or int(n) < 1 or int(i) >= int(n):
            raise ConfigError(f"--shard {text!r}: write I/N with 0 <= I < N, e.g. --shard 0/4")
        if w.distributed:
            raise ConfigError("--shard and torchrun both split the work; use one of them")
        return (int(i), int(n)), w
    if w.distributed:
        w, _ = init("cpu")
        return (w.rank, w.size), w
    return None, w
