"""``learngene probe``: frozen-feature scores of descendant designs (rows) before any training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from learngene.cli.thresholds import add_threshold_arguments
from learngene.errors import LearngeneError


def register(subparsers) -> None:
    from learngene.evaluation.settings import (
        DEFAULT_NULL_DRAWS,
        DEFAULT_ROWS,
        DEFAULT_SUBSET,
        FULL_NULL_DRAWS,
        FULL_WIDTHS,
    )

    probe = subparsers.add_parser(
        "probe", help="score descendant designs by their frozen features (linear probe, k-NN) before training",
        description="Build each row's descendant at the ancestor's resolution, extract CLS features on a fixed "
                    "stratified subset, score them (linear probe, k-NN), and place Cluster-Learngene within a "
                    "null of random same-shape head choices. Features are cached per design.")
    probe.add_argument("--ancestor", default="builtin", help="builtin | timm model name | random:<name> (default builtin)")
    probe.add_argument("--dataset", default="digits",
                       help="built-in datasets, comma-separated: digits | lfw-faces (default digits)")
    probe.add_argument("--depth", type=int, default=6, help="descendant layers L_d (default 6)")
    probe.add_argument("--width-ratio",
                       help="width ratios and/or schedules, comma-separated, e.g. 2,1.5,0.5,decreasing (default 2; "
                            f"--full: {','.join(FULL_WIDTHS)})")
    probe.add_argument("--schedule", help="a schedule to add to the widths (decreasing | increasing)")
    probe.add_argument("--null-draws",
                       help=f"random head subsets per width: one number, or one per width (default "
                            f"{DEFAULT_NULL_DRAWS}; --full: {FULL_NULL_DRAWS})")
    probe.add_argument("--subset", type=int,
                       help=f"images per dataset, stratified and fixed (default {DEFAULT_SUBSET}; --full: all)")
    probe.add_argument("--full", action="store_true", help="all images, every ratio, 50 null draws (the GPU run)")
    probe.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                       help="rows in table order, comma-separated (an unknown name lists the registered ones; "
                            "first-heads is available beside the defaults)")
    probe.add_argument("--seed", type=int, default=0, help="seed of the builds, null draws and folds (default 0)")
    add_threshold_arguments(probe)
    probe.add_argument("--device", default="cpu", help="cpu (default) | cuda | auto")
    probe.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward passes (CUDA)")
    probe.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    probe.add_argument("--jobs", type=int, default=1, help="processes scoring designs in parallel (default 1; same scores)")
    probe.add_argument("--out", help="write the JSON result here (updated after every table)")
    probe.add_argument("--force", action="store_true",
                       help="replace an existing --out file that learngene probe wrote (never another file)")
    probe.add_argument("--json", action="store_true", help="print the JSON result instead of text")
    probe.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    probe.set_defaults(func=run_probe_command)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def settings_from_args(args):
    """:class:`ProbeSettings` from the parsed arguments (``--full`` fills what was not given)."""
    from learngene.attention.statistics import resolve_device
    from learngene.evaluation.settings import (
        DEFAULT_NULL_DRAWS,
        DEFAULT_SUBSET,
        FULL_NULL_DRAWS,
        FULL_WIDTHS,
        ProbeSettings,
    )

    widths = _split(args.width_ratio) + _split(args.schedule)
    if not widths:
        widths = list(FULL_WIDTHS) if args.full else ["2"]
    try:
        draws = [int(d) for d in _split(args.null_draws)]
    except ValueError:
        raise LearngeneError(f"--null-draws must be whole numbers separated by commas (got {args.null_draws!r})") from None
    if not draws:
        draws = [FULL_NULL_DRAWS if args.full else DEFAULT_NULL_DRAWS]
    subset = args.subset if args.subset is not None else (None if args.full else DEFAULT_SUBSET)
    device = str(resolve_device(args.device))
    if args.bf16 and device == "cpu":
        raise LearngeneError("--bf16 is for CUDA; drop it or use --device cuda")
    return ProbeSettings(
        ancestor=args.ancestor, datasets=tuple(_split(args.dataset)), depth=args.depth, widths=tuple(widths),
        null_draws=tuple(draws), subset=subset, seed=args.seed, eps=args.eps, min_heads=args.min_heads,
        rows=tuple(_split(args.rows)), device=device,
        bf16=args.bf16, batch_size=args.batch_size, jobs=args.jobs,
    )


def command_for(settings) -> list[str]:
    """The ``learngene probe`` argument list that reproduces ``settings`` exactly (recorded in the JSON)."""
    command = ["learngene", "probe", "--ancestor", settings.ancestor, "--dataset", ",".join(settings.datasets),
               "--depth", str(settings.depth), "--width-ratio", ",".join(settings.widths),
               "--null-draws", ",".join(map(str, settings.null_draws)), "--rows", ",".join(settings.rows),
               "--seed", str(settings.seed), "--eps", f"{settings.eps:g}", "--min-heads", str(settings.min_heads),
               "--device", settings.device, "--batch-size", str(settings.batch_size),
               "--jobs", str(settings.jobs)]
    command += ["--full"] if settings.subset is None else ["--subset", str(settings.subset)]
    return command + (["--bf16"] if settings.bf16 else [])


def run_probe_command(args) -> int:
    from learngene.atomic import write_json_atomic
    from learngene.cli.output_file import check_output_file
    from learngene.evaluation.frozen_probe import PROBE_FORMAT, format_result, run_probe

    settings = settings_from_args(args)
    settings.check()  # bad input fails here, before the ancestor loads
    out = Path(args.out) if args.out else None
    if out is not None:
        check_output_file(out, PROBE_FORMAT, force=args.force, example="probe.json")
        if not out.parent.is_dir():
            raise LearngeneError(f"the folder of --out ({out.parent}) does not exist; create it first")
    command = command_for(settings)

    def save(result: dict) -> None:
        if out is not None:
            write_json_atomic(out, {**result, "command": command})

    result = run_probe(settings, progress=not args.no_progress, on_table=save)
    save(result)
    if args.json:
        json.dump({**result, "command": command}, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(format_result(result))
    return 0
