"""``learngene size | build``: preview a descendant's exact size, and build, initialise and save one."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from learngene.cli.thresholds import add_threshold_arguments
from learngene.errors import LearngeneError


def register(subparsers) -> None:
    size = subparsers.add_parser("size", help="a descendant's exact parameters, MACs and memory estimate (no build)")
    _add_ancestor_arguments(size)
    _add_architecture_arguments(size)
    size.add_argument("--num-classes", type=int, help="classifier outputs (default: the ancestor's, 1000 if none)")
    size.add_argument("--init", default="cluster-learngene", help="method, for the inherited count (see build)")
    size.add_argument("--batch-size", type=int, default=64, help="batch for the training-memory estimate (default 64)")
    size.add_argument("--table", action="store_true",
                      help="the scale table: depth 4/6/9/12 x width ratio 2/1.5/1/0.5 and both schedules")
    size.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_parity_argument(size)
    size.set_defaults(func=run_size)

    build = subparsers.add_parser("build", help="build a descendant initialised from the learngene or a baseline")
    _add_ancestor_arguments(build)
    _add_architecture_arguments(build)
    build.add_argument("--num-classes", type=int, required=True, help="classifier outputs")
    build.add_argument("--init", default="cluster-learngene",
                       help="cluster-learngene (default) | scratch | heuristic-learngene | auto-learngene (these two "
                            "also inherit embeddings and final norm, as the authors' loader; their models have "
                            "--depth 12) | heuristic-learngene-layers-only | auto-learngene-layers-only (the copied "
                            "layers alone) | pretrained-prune | ancestor | weight-transformation (MiniViT-style: "
                            "pairs of layers share one ancestor block, each with its own head mixing)")
    build.add_argument("--stats", help="STATS.json from `learngene analyze` on this ancestor (default: computed "
                                       "now on the built-in probe images when the method needs it)")
    build.add_argument("--stats-any", action="store_true",
                       help="use --stats even if it was computed on another ancestor (not recommended)")
    add_threshold_arguments(build)
    build.add_argument("--ffn-groups", default="auto", help="'auto' (default), 'none', or groups like '6-7,9-11'")
    build.add_argument("--head-order", default="priority",
                       help="priority (default) | original | ascending-mad | descending-mad")
    build.add_argument("--centroid", default="nearest", help="nearest (default) | average")
    build.add_argument("--train-transform", action="store_true", help="keep the FFN transformation T and train it")
    build.add_argument("--transform-init", default="default", help="default (PyTorch init) | identity")
    build.add_argument("--seed", type=int, default=0, help="seed for the random parts (default 0)")
    build.add_argument("--out", required=True, help="new directory for model.safetensors and config.json")
    build.add_argument("--force", action="store_true",
                       help="replace an existing output directory that learngene wrote (never a foreign folder)")
    _add_parity_argument(build)
    build.set_defaults(func=run_build)


def _add_parity_argument(parser: argparse.ArgumentParser) -> None:
    from learngene.design_options import PARITY_MODES

    parser.add_argument("--parity", default="none", choices=PARITY_MODES,
                        help="authors: reproduce the authors' code for a DeiT-Ti/S/B ancestor (their hard-coded S_l "
                             "and FFN groups, qkv chunks, no qkv bias, their W_O, by-index schedules; see "
                             "docs/fidelity.md); default none")


def _add_ancestor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ancestor", default="builtin",
                        help="builtin | timm model name | random:<name> | PATH[@ARCH] (default: builtin)")
    parser.add_argument("--arch", help="architecture of a weights file given without @ARCH")


def _add_architecture_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--depth", type=int, help="layers L_d (default: the ancestor's)")
    width = parser.add_mutually_exclusive_group()
    from learngene.design_options import SCHEDULE_HELP

    width.add_argument("--width-ratio", help=f"H_d = floor(H / W) heads per layer, or a schedule: {SCHEDULE_HELP}; default 1")
    width.add_argument("--heads", help="heads per layer, comma-separated, one per layer (e.g. 3,3,6,6)")
    parser.add_argument("--img-size", type=int, help="descendant input resolution (default: the ancestor's)")


def width_from_args(args) -> tuple[float | None, str | None, tuple[int, ...] | None]:
    """(width_ratio, schedule, heads) from ``--width-ratio`` (a number or a schedule name) and ``--heads``."""
    from learngene.design_options import SCHEDULES

    width_ratio = schedule = heads = None
    if args.width_ratio is not None:
        if args.width_ratio in SCHEDULES:
            schedule = args.width_ratio
        else:
            try:
                width_ratio = float(args.width_ratio)
            except ValueError as error:
                raise LearngeneError(
                    f"--width-ratio must be a number or one of {', '.join(SCHEDULES)} (got {args.width_ratio!r})"
                ) from error
    if args.heads is not None:
        try:
            heads = tuple(int(h) for h in args.heads.split(",") if h.strip())
        except ValueError as error:
            raise LearngeneError(f"--heads must be whole numbers separated by commas (got {args.heads!r})") from error
    return width_ratio, schedule, heads


def spec_from_args(args, **extra):
    """A :class:`DescendantSpec` from the parsed architecture arguments (plus ``extra`` fields)."""
    from learngene.descendant.spec import DescendantSpec

    width_ratio, schedule, heads = width_from_args(args)
    return DescendantSpec(depth=args.depth, width_ratio=width_ratio, schedule=schedule, heads=heads,
                          img_size=args.img_size, num_classes=args.num_classes, **extra)


def run_size(args) -> int:
    from learngene.descendant.arch import summary_without_weights
    from learngene.descendant.size import descendant_size, scale_table

    if args.batch_size < 1:
        raise LearngeneError(f"--batch-size must be at least 1 (got {args.batch_size})")
    summary = summary_without_weights(args.ancestor, args.arch)
    if args.table:
        rows = scale_table(summary, img_size=args.img_size, num_classes=args.num_classes, init=args.init,
                           parity=args.parity)
        if args.json:
            json.dump(rows, sys.stdout)
            sys.stdout.write("\n")
        else:
            print(format_table(rows))
        return 0
    size = descendant_size(summary, spec_from_args(args, init=args.init, parity=args.parity), batch_size=args.batch_size)
    if args.json:
        json.dump(size.to_dict(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_size(size))
    return 0


def _millions(value: int) -> str:
    return f"{value / 1e6:.2f} M"


def format_size(size) -> str:
    """A short human-readable description of a :class:`DescendantSize`."""
    gib = 1024 ** 3
    lines = [
        f"descendant: {size.depth} layers, heads {size.heads_per_layer}, {size.img_size} px ({size.tokens} tokens), "
        f"{size.num_classes} classes, init {size.init}",
        f"parameters: {size.params:,} ({size.params / size.ancestor_params:.1%} of the ancestor's "
        f"{size.ancestor_params:,})",
        f"inherited:  {size.inherited_params:,} ({size.inherited_fraction:.1%}) counting every head slot; distinct "
        f"ancestor values: {'unknown before clustering' if size.inherited_distinct_params is None else f'{size.inherited_distinct_params:,}'}",
        f"trainable:  {size.trainable_params:,}",
        f"MACs/image: {size.macs:,} ({size.macs / 1e9:.3f} G); FLOPs/image = 2 x MACs = {size.flops:,}",
        f"training memory estimate at batch {size.batch_size}: ~{size.train_memory_fp32_estimate_bytes / gib:.2f} GiB "
        f"fp32, ~{size.train_memory_amp_estimate_bytes / gib:.2f} GiB AMP (approximate)",
    ]
    lines += [f"note: {note}" for note in size.notes]
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """The scale table as aligned text."""
    header = f"{'kind':<10} {'model':<34} {'params':>10} {'x anc':>6} {'MACs':>9} {'x anc':>6} {'inherited':>9}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['kind']:<10} {row['label']:<34} {_millions(row['params']):>10} {row['params_vs_ancestor']:>6.2f} "
            f"{row['macs'] / 1e9:>7.2f} G {row['macs_vs_ancestor']:>6.2f} {row['inherited_fraction']:>9.1%}"
        )
    return "\n".join(lines)


def run_build(args) -> int:
    from learngene.ancestors import load_ancestor
    from learngene.cli.analysis import ffn_groups_from_arg
    from learngene.descendant import build_descendant, read_distances, save_descendant
    from learngene.output_dir import DESCENDANT, check_replaceable, check_writable

    out = Path(args.out)
    check_replaceable(out, DESCENDANT, force=args.force)  # refuse before any expensive work
    check_writable(out)
    groups = ffn_groups_from_arg(args.ffn_groups)
    spec = spec_from_args(
        args, init=args.init, ffn_groups=groups, head_order=args.head_order, centroid=args.centroid,
        train_transform=args.train_transform, transform_init=args.transform_init, seed=args.seed, parity=args.parity,
    )
    ancestor = load_ancestor(args.ancestor, arch=args.arch)
    spec = spec.resolve(ancestor.summary)  # reject a bad spec before computing statistics
    distances, provenance = None, {}
    needs_stats = spec.init == "cluster-learngene" and spec.parity != "authors"  # parity: the authors' fixed S_l
    if args.stats and needs_stats:
        distances, provenance = read_distances(args.stats, ancestor.summary, allow_any=args.stats_any)
    elif needs_stats:
        print("computing head statistics on the built-in probe images (pass --stats to reuse a file)", file=sys.stderr)
    descendant = build_descendant(ancestor, spec, distances=distances, eps=args.eps, min_heads=args.min_heads,
                                  provenance=provenance)
    save_descendant(descendant, out, force=args.force)
    config = descendant.config
    print(f"wrote {out}: {config['params']:,} parameters, {config['inherited_params']:,} inherited "
          f"({config['inherited_params'] / config['params']:.1%}), init {spec.init}", file=sys.stderr)
    return 0
