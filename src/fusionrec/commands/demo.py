"""`fusionrec demo`: the whole pipeline on the bundled MovieLens demo data in about a minute.

Loads the demo data (5-core, with the bundled poster and text features), fits a few models, prints a comparison
table, writes the best model's artifact and shows recommendations for one user with movie titles.
"""

from __future__ import annotations

import argparse

from fusionrec.commands._common import add_output_args, comma_list, emit, table

# Each entry: (model name, params). Multimodal entries run only when the data has features.
DEMO_MODELS: list[tuple[str, dict]] = [
    ("most-popular", {}),
    ("itemknn", {}),
    ("als", {"factors": 128, "reg": 20.0, "alpha": 2.0}),
    # collaborative models plus the poster/text attention network, weighted on the validation split
    (
        "late-fusion",
        {
            "models": "als,ease,neural",
            "params": {"als": {"factors": 128, "reg": 20.0, "alpha": 2.0}, "neural": {"epochs": 30}},
        },
    ),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train and compare models on the bundled demo data, show recommendations")
    p.add_argument("--out", default="runs/demo", help="where to write the demo artifact (default runs/demo)")
    p.add_argument("--images", help="recompute poster features from this folder of {movieId}.jpg images")
    p.add_argument("--user", default="1", help="raw user id to show recommendations for (default 1)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--serve", action="store_true", help="start the HTTP server on the demo artifact afterwards"
    )
    p.add_argument("--port", type=int, default=8000, help="port for --serve")
    p.add_argument(
        "--models",
        help="comma-separated subset of the demo models to compare (default: "
        + ",".join(n for n, _ in DEMO_MODELS)
        + ")",
    )
    add_output_args(p)


def run(args: argparse.Namespace) -> int:
    import logging

    from fusionrec.artifacts import save_artifact
    from fusionrec.data.loaders import LoadOptions, load_dataset
    from fusionrec.data.splits import split_dataset, split_summary
    from fusionrec.errors import ConfigError
    from fusionrec.evaluation import evaluate
    from fusionrec.models.registry import get_model_class
    from fusionrec.pipeline import build_model, fit_artifact
    from fusionrec.recommend import recommend_for_user

    log = logging.getLogger("fusionrec")
    models = DEMO_MODELS
    if args.models:
        wanted = comma_list(args.models)
        known = [n for n, _ in DEMO_MODELS]
        unknown = [m for m in wanted if m not in known]
        if unknown or not wanted:
            raise ConfigError(f"--models {args.models!r}: choose from {', '.join(known)}")
        models = [(n, p) for n, p in DEMO_MODELS if n in wanted]
    ds = load_dataset("demo", options=LoadOptions(kcore=5))
    log.info("demo data: the bundled MovieLens ratings, 5-core (users and items with >= 5 interactions)")
    if args.images:
        from fusionrec.features import extract_features

        image_feats = extract_features(
            ds, image="cnn", text=None, image_dir=args.images, show_progress=not args.quiet
        )
        feats = ds.features
        for name in image_feats:
            feats.add(name, image_feats[name], image_feats.mask(name))
        feats.extractors.update(image_feats.extractors)
        ds = ds.with_features(feats)
    split = split_dataset(ds, "ratio", seed=args.seed)
    log.info("demo data: %s; split %s", ds.summary(), split_summary(split))
    rows, best = [], None
    for name, params in models:
        cls = get_model_class(name)
        if cls.requires_features and not len(ds.features):
            log.info("skipping %s: the demo data has no features", name)
            continue
        model = build_model(name, params, seed=args.seed, show_progress=not args.quiet)
        art, seconds = fit_artifact(ds, split, model, seed=args.seed)
        res = evaluate(model, split)
        rows.append({"model": name, **res.metrics, "fit_s": round(seconds, 2)})
        if best is None or res.metrics["ndcg@20"] > best[1]:
            best = (art, res.metrics["ndcg@20"], name)
    if best is None:
        raise ConfigError(
            "none of the chosen demo models can run on the demo data; choose others with --models"
        )
    art, _, best_name = best
    art.info["load"] = {"data": "demo", "format": None, "kcore": 5, "min_rating": None}
    art.info["test_metrics"] = next(r for r in rows if r["model"] == best_name)
    save_artifact(art, args.out)
    recs = recommend_for_user(art, args.user, k=10)
    text = [
        f"demo data: {ds.n_users} users, {ds.n_items} items, {ds.n_interactions} interactions, "
        f"modalities: {', '.join(ds.features) or 'none'}",
        "",
        "test metrics (full ranking, train+valid items masked):",
        table(rows, ["model", "recall@10", "recall@20", "ndcg@10", "ndcg@20", "fit_s"]),
        "",
        f"best model: {best_name} → artifact {args.out}",
        f"top 10 for user {args.user}:",
    ]
    text += [f"{r['rank']:>3}. {r.get('title', r['item_id'])}" for r in recs]
    text += ["", f"next: fusionrec recommend {args.out} --user {args.user}    fusionrec serve {args.out}"]
    emit(
        args,
        {"models": rows, "best": best_name, "artifact": str(args.out), "recommendations": recs},
        "\n".join(text),
    )
    if args.serve:
        from fusionrec.commands.serve import serve_artifact

        return serve_artifact(
            args.out,
            host="127.0.0.1",
            port=args.port,
            log_level="warning" if args.quiet else "info",
            print_examples=True,
        )
    return 0
