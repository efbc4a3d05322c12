"""`fusionrec features`: extract item features from images and texts and write a directory models train on."""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_data_args, add_output_args, add_split_args, emit

IMAGE_CHOICES = ("cnn", "bovw", "color", "none")
TEXT_CHOICES = ("sentence", "tfidf", "lda", "wordvec", "none")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="extract item image/text features (cached) and write an MMRec directory with them",
        description="Extract item features and write --out as a full MMRec atomic directory (interactions "
        "with their split, id maps, <modality>_feat.npy + _mask.npy, items.csv, manifest.json) that --data "
        "reads back; "
        "with --features-only, write just the feature files (attach them with --features DIR). Re-runs only "
        "extract items whose content changed.",
    )
    add_data_args(p)
    add_split_args(p)
    p.add_argument("--image", choices=IMAGE_CHOICES, default="cnn", help="image extractor (default: cnn)")
    p.add_argument(
        "--text", choices=TEXT_CHOICES, default="sentence", help="text extractor (default: sentence)"
    )
    p.add_argument("--image-name", default="image", help="modality name of the image features")
    p.add_argument("--text-name", default="text", help="modality name of the text features")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extractor parameter (repeatable); prefix image. or text. to target one, e.g. "
        "--param arch=resnet18 --param weights=r18.pth or --param text.svd_dims=128",
    )
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument(
        "--features-only",
        action="store_true",
        help="write only the feature files (items.csv, <modality>_feat.npy, _mask.npy, manifest.json)",
    )
    p.add_argument("--cache", help="feature cache directory (default: ~/.cache/fusionrec/features)")
    p.add_argument("--no-cache", action="store_true", help="extract everything, write no cache")
    add_output_args(p)


def route_params(raw: dict, image: str | None, text: str | None) -> tuple[dict, dict]:
    """Split ``--param`` values between the image and text extractors (by prefix, else by who takes them)."""
    from fusionrec.errors import ConfigError
    from fusionrec.features.base import accepted_params

    img_ok = set(accepted_params(image)) if image else set()
    txt_ok = set(accepted_params(text)) if text else set()
    img: dict = {}
    txt: dict = {}
    for key, value in raw.items():
        side, dot, rest = key.partition(".")
        if dot and side in ("image", "text"):
            (img if side == "image" else txt)[rest] = value
            continue
        if key not in img_ok and key not in txt_ok:
            raise ConfigError(
                f"--param {key}: neither extractor accepts it (image {image or '-'}: {sorted(img_ok)}; "
                f"text {text or '-'}: {sorted(txt_ok)})"
            )
        if key in img_ok:
            img[key] = value
        if key in txt_ok:
            txt[key] = value
    return img, txt


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fusionrec.commands._common import load_data, make_split, parse_params
    from fusionrec.data.export import export_mmrec
    from fusionrec.data.feature_dir import update_manifest, write_feature_dir
    from fusionrec.features.extract import run_extraction

    image = None if args.image == "none" else args.image
    text = None if args.text == "none" else args.text
    if image is None and text is None:
        from fusionrec.errors import ConfigError

        raise ConfigError("nothing to extract: --image none and --text none")
    img_params, txt_params = route_params(parse_params(args.param), image, text)
    ds = load_data(args)
    cache = False if args.no_cache else args.cache
    result = run_extraction(
        ds,
        image=image,
        text=text,
        image_params=img_params,
        text_params=txt_params,
        image_name=args.image_name,
        text_name=args.text_name,
        cache=cache,
        show_progress=not args.quiet,
    )
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
            lines.append(f"  unreadable: {f.source}: {f.reason}")
        if r.n_failed > 10:
            lines.append(f"  ... and {r.n_failed - 10} more (see manifest.json)")
    lines.append(
        f"wrote {out} ({'features only' if args.features_only else 'MMRec directory'}: "
        + ", ".join(f"{k} {v}-d" for k, v in result.features.dims.items())
        + ")"
    )
    emit(args, payload, "\n".join(lines))
    return 0
