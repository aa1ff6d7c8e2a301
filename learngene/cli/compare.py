"""``learngene compare``: train one descendant architecture once per init method and seed, and tabulate the results.

Recipe flags are the ``learngene train`` ones (``--epochs``, ``--max-steps``, ``--img-size``, ``--lr``, ``--mixup``
...); the flags that choose the model (``--descendant``, ``--model``, ``--init``, ``--seed``) are set per run by the
comparison and rejected here.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from learngene.cli.thresholds import add_threshold_arguments
from learngene.errors import LearngeneError

DEFAULT_INITS = "cluster-learngene,scratch,heuristic-learngene,auto-learngene,pretrained-prune"


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers) -> None:
    from learngene.cli.training import add_launcher_arguments
    from learngene.training.config import add_train_arguments

    # The train flags come first; "resolve" lets the comparison's own --ancestor/--depth/--dataset/... replace the
    # train versions of the same flags (which mean one run there, a whole table here).
    parser = subparsers.add_parser(
        "compare", conflict_handler="resolve",
        help="compare init methods: same descendant, same recipe, several seeds, one table",
        description="Build the same descendant once per init method and seed, fine-tune each as a tracked run "
                    "(visible in `learngene runs` and the app), and write OUT/results.json and OUT/results.md. "
                    "Rerunning with the same --out resumes: finished runs are kept.",
    )
    add_train_arguments(parser)
    group = parser.add_argument_group("comparison")
    group.add_argument("--ancestor", default="builtin",
                       help="builtin | timm model name | random:<name> | PATH[@ARCH] (default: builtin)")
    group.add_argument("--arch", help="architecture of a weights file given without @ARCH")
    group.add_argument("--dataset", "--datasets", dest="datasets", required=True,
                       help="dataset name(s) or folder(s), comma-separated (e.g. digits,lfw-faces)")
    group.add_argument("--data-root", action="append", default=[], metavar="[NAME=]PATH",
                       help="data root for every dataset, or NAME=PATH for one (repeatable)")
    group.add_argument("--depth", type=int, default=6, help="descendant layers (default 6)")
    width = group.add_mutually_exclusive_group()
    width.add_argument("--width-ratio", help="H_d = floor(H / W) heads per layer, or decreasing | increasing "
                                             "(default 1)")
    width.add_argument("--heads", help="heads per layer, comma-separated")
    group.add_argument("--inits", default=DEFAULT_INITS, help=f"rows: init methods (default {DEFAULT_INITS})")
    group.add_argument("--ablations", action="store_true",
                       help="add the paper's cluster-learngene ablations as rows (head order, centroid, T, Eps)")
    group.add_argument("--variant", action="append", default=[], metavar="LABEL:KEY=VALUE,...",
                       help="an extra row, e.g. order-original:head_order=original or eps20:eps=20 (repeatable)")
    group.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="seeds (default 0,1,2)")
    add_threshold_arguments(group)
    group.add_argument("--stats", help="statistics file of this ancestor (default: computed once on the built-in "
                                       "probe images)")
    group.add_argument("--out", required=True, help="output directory (reused to resume)")
    group.add_argument("--name", help="prefix of the run names (default: the output directory's name)")
    group.add_argument("--dry-run", action="store_true",
                       help="resolve everything and print the equivalent build/train commands; train nothing")
    group.add_argument("--check-data", action="store_true",
                       help="with --dry-run: also read every dataset's splits (never downloads)")
    group.add_argument("--threads", type=int, help="CPU threads per run (sets OMP_NUM_THREADS for the runs)")
    group.add_argument("--timeout-min", type=float, help="stop waiting after this many minutes (runs go on)")
    group.add_argument("--prune-checkpoints", action="store_true",
                       help="delete a run's checkpoints once its figures are recorded")
    group.add_argument("--runs-dir", help="runs root (default: $LEARNGENE_RUNS_DIR or the user data directory)")
    group.add_argument("--report", default="results",
                       help="name of the table files: OUT/NAME.json and OUT/NAME.md (default results); lets a "
                            "second set of rows (e.g. --ablations) share OUT and its finished runs")
    group.add_argument("--json", action="store_true", help="print the table (or dry run) as JSON")
    add_launcher_arguments(parser)
    for action in parser._actions:  # the train flags a comparison rejects stay parseable (for a clear error) but unlisted
        if action.dest in _REJECTED:
            action.help = argparse.SUPPRESS
    parser.set_defaults(func=run_compare)


# Train flags that pick the model: meaningless for a comparison, which sets them per run.
_REJECTED = {"descendant": "--descendant", "model": "--model", "model_kwargs": "--model-arg", "init": "--init",
             "seed": "--seed", "schedule": "--schedule"}


def recipe_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig overrides given on the command line (and in ``--config``), minus the model-source fields."""
    from learngene.compare.plan import MODEL_SOURCE_FIELDS
    from learngene.training.config import TrainConfig

    for name, flag in _REJECTED.items():
        if hasattr(args, name):  # train flags default to SUPPRESS: present means the user gave it
            hint = "use --width-ratio decreasing|increasing" if name == "schedule" else "use --inits / --seeds"
            raise LearngeneError(f"{flag} picks the model of one run; a comparison sets it per run ({hint})")
    recipe: dict[str, Any] = {}
    if getattr(args, "config", None):
        base = TrainConfig.from_yaml(args.config).to_dict()
        defaults = TrainConfig().to_dict()
        recipe.update({k: v for k, v in base.items() if k not in MODEL_SOURCE_FIELDS and v != defaults[k]})
    for name in TrainConfig().to_dict():
        if name in MODEL_SOURCE_FIELDS or name == "data_root" or not hasattr(args, name):
            continue
        recipe[name] = getattr(args, name)
    return recipe


def plan_from_args(args: argparse.Namespace):
    from learngene.cli.descendant import width_from_args
    from learngene.compare.plan import ComparisonPlan, Variant, ablation_variants, dataset_key, parse_variant

    width_ratio, schedule, heads = width_from_args(args)
    if width_ratio is None and schedule is None and heads is None:
        width_ratio = 1.0
    variants = [Variant(label=init.strip(), init=init.strip()) for init in args.inits.split(",") if init.strip()]
    if args.ablations:
        variants += ablation_variants()
    variants += [parse_variant(text) for text in args.variant]
    datasets = tuple(d.strip() for d in args.datasets.split(",") if d.strip())
    data_roots: dict[str, str] = {}
    for item in args.data_root:
        name, sep, path = item.partition("=")
        # NAME=PATH only when NAME is one of the datasets: a path may contain '=' too.
        if sep and name in map(dataset_key, datasets):
            data_roots[name] = path
        else:
            data_roots["*"] = item
    recipe = recipe_from_args(args)
    return ComparisonPlan(
        ancestor=args.ancestor, arch=args.arch, datasets=datasets, depth=args.depth, width_ratio=width_ratio,
        heads=heads, schedule=schedule, variants=tuple(variants), seeds=tuple(args.seeds), recipe=recipe,
        data_roots=data_roots, eps=args.eps, min_heads=args.min_heads, stats=args.stats, name=args.name,
    ).validate()


def check_comparison_folder(out: str | Path) -> None:
    """``--out`` must be new, empty, or a comparison folder (it holds ``plan.json``: rerunning resumes it).

    compare writes results.json, results.md, plan.json, jobs/ and descendants/ into it: any other folder could hold
    files of those names that are not learngene's (found writing over a user's results.md).
    """
    from learngene.compare.execute import PLAN_FILE

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LearngeneError(f"--out {out} is a file; give a folder for the comparison (e.g. cmp/)")
    if out.is_dir() and any(out.iterdir()) and not (out / PLAN_FILE).is_file():
        raise LearngeneError(f"--out {out} is a folder that learngene compare did not write (no {PLAN_FILE}); "
                             "choose a new or empty folder")  # fmt: skip


def run_compare(args: argparse.Namespace) -> int:
    from learngene.cli.training import launcher_options
    from learngene.compare.commands import dry_run, format_dry_run
    from learngene.compare.execute import run_comparison
    from learngene.compare.report import write_results

    check_comparison_folder(args.out)  # before any work, and the dry run says what the real run would
    plan = plan_from_args(args)
    options = launcher_options(args)
    if args.check_data and not args.dry_run:
        raise LearngeneError("--check-data goes with --dry-run")
    if args.dry_run:
        result = dry_run(plan, args.out, check_data=args.check_data)
        print(json.dumps(result) if args.json else format_dry_run(result))
        return 0
    # The command line as typed, for results.md (None when called in-process, e.g. from tests).
    command = shlex.join(["learngene", *sys.argv[sys.argv.index("compare"):]]) if "compare" in sys.argv else None
    records = run_comparison(
        plan, args.out, runs_dir=args.runs_dir, slots=args.slots, launcher=args.launcher, launcher_options=options,
        threads=args.threads, timeout_s=None if args.timeout_min is None else args.timeout_min * 60,
        prune_checkpoints=args.prune_checkpoints, progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    rows = write_results(plan, records, args.out, command=command, name=args.report)
    if args.json:
        print(json.dumps(rows))
    else:
        from learngene.compare.report import markdown_table

        print(markdown_table(rows))
        out = Path(args.out)  # joined as a path: "cmp/" + "/report.json" printed "cmp//report.json"
        print(f"wrote {out / (args.report + '.json')} and {out / (args.report + '.md')}", file=sys.stderr)
    unfinished = sum(r["failed"] + r["pending"] for r in rows)
    return 0 if not unfinished else 1
