"""``learngene analyze | cluster | extract``: statistics, clustering and the learngene from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from learngene.cli.thresholds import add_threshold_arguments


def _add_ancestor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ancestor", default="builtin",
                        help="builtin | timm model name | random:<name> | PATH[@ARCH] (default: builtin)")
    parser.add_argument("--arch", help="architecture of a weights file given without @ARCH")
    parser.add_argument("--img-size", type=int, help="input resolution (default: the ancestor's)")


def register(subparsers) -> None:
    analyze = subparsers.add_parser("analyze", help="compute per-head attention statistics over probe images")
    _add_ancestor_arguments(analyze)
    analyze.add_argument("--images", default="builtin", help="folder of probe images, or builtin (default)")
    analyze.add_argument("--num-images", type=int, help="use at most this many probe images")
    analyze.add_argument("--batch-size", type=int, default=8)
    analyze.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    analyze.add_argument("--out", required=True, help="statistics JSON file to write")
    analyze.add_argument("--force", action="store_true",
                         help="replace an existing --out statistics file that learngene wrote (never another file)")
    analyze.set_defaults(func=run_analyze)

    cluster = subparsers.add_parser("cluster", help="cluster each layer's heads; prints JSON")
    cluster.add_argument("--stats", required=True, help="STATS.json from `analyze`, or a bare JSON list of L lists")
    add_threshold_arguments(cluster)
    cluster.set_defaults(func=run_cluster)

    extract = subparsers.add_parser("extract", help="extract the learngene (centroid heads, FFN centroids, ...)")
    _add_ancestor_arguments(extract)
    extract.add_argument("--stats", required=True, help="STATS.json computed on this ancestor")
    extract.add_argument("--stats-any", action="store_true",
                         help="use --stats even if it was computed on another ancestor (not recommended)")
    add_threshold_arguments(extract)
    extract.add_argument("--centroid", default="nearest", choices=["nearest", "average"])
    extract.add_argument("--ffn-groups", default="auto",
                         help="'auto' (the documented rule), 'none', or groups like '6-7,9-11'")
    extract.add_argument("--out", required=True, help="directory to write the learngene into")
    extract.add_argument("--force", action="store_true",
                         help="replace an existing output directory that learngene wrote (never a foreign folder)")
    extract.set_defaults(func=run_extract)


# The words --ffn-groups accepts besides explicit groups, and what each means to extract_learngene/DescendantSpec.
FFN_GROUP_WORDS = {"auto": "auto", "none": None}


def ffn_groups_from_arg(text: str):
    """``--ffn-groups``: ``auto`` (the documented rule), ``none`` (no sharing), or groups like ``6-7,9-11``."""
    from learngene.ffn_groups import parse_groups

    if text in FFN_GROUP_WORDS:
        return FFN_GROUP_WORDS[text]
    return parse_groups(text)


def _progress_bar(total_label: str):
    from tqdm import tqdm

    bar = tqdm(desc=total_label, unit="img", file=sys.stderr, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def run_analyze(args) -> int:
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import STATS_FORMAT, compute_head_statistics
    from learngene.cli.output_file import check_output_file
    from learngene.output_dir import check_writable
    from learngene.probes import load_probe_images

    # Before the expensive part; an existing file is replaced only with --force and only if it is a stats file.
    out = check_output_file(args.out, STATS_FORMAT, force=args.force, example="stats.json")
    check_writable(out)
    ancestor = load_ancestor(args.ancestor, arch=args.arch, img_size=args.img_size)
    probes = load_probe_images(args.images, ancestor.summary, args.num_images)
    if probes.skipped:
        print(f"skipped {probes.skipped} unreadable image file(s)", file=sys.stderr)
    bar, update = _progress_bar("attention statistics")
    with bar:
        stats = compute_head_statistics(ancestor.model, probes, ancestor.summary, batch_size=args.batch_size,
                                        device=args.device, progress=update, statistics="all")
    stats.save_json(out)
    print(f"wrote {out}: {stats.num_layers} layers x {stats.num_heads} heads over {stats.num_images} images",
          file=sys.stderr)
    return 0


def clustering_report(distances, eps: float, min_heads: int) -> dict:
    """The JSON printed by ``learngene cluster``: per-layer clusters plus proposed FFN groups."""
    from learngene.clustering import cluster_layers
    from learngene.ffn_groups import propose_groups

    layers = cluster_layers(distances, eps=eps, min_heads=min_heads)
    return {
        "eps": eps,
        "min_heads": min_heads,
        "layers": [layer.to_dict() for layer in layers],
        "num_clusters": sum(len(layer.clusters) for layer in layers),
        "num_heads": sum(len(layer.labels) for layer in layers),
        "ffn_groups": propose_groups(layers, eps=eps),
    }


def run_cluster(args) -> int:
    from learngene.attention.stats_file import read_stats_file

    data = read_stats_file(args.stats)
    json.dump(clustering_report(data["mean_attention_distance"], args.eps, args.min_heads), sys.stdout)
    sys.stdout.write("\n")
    return 0


def run_extract(args) -> int:
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import check_stats_ancestor, read_stats_file
    from learngene.extraction import extract_learngene, save_learngene
    from learngene.output_dir import LEARNGENE, check_replaceable, check_writable

    data = read_stats_file(args.stats)
    out = Path(args.out)
    check_replaceable(out, LEARNGENE, force=args.force)  # refuse before any expensive work
    check_writable(out)
    ancestor = load_ancestor(args.ancestor, arch=args.arch, img_size=args.img_size)
    warning = check_stats_ancestor(data, ancestor.summary, args.stats, allow_any=args.stats_any)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    groups = ffn_groups_from_arg(args.ffn_groups)
    learngene = extract_learngene(
        ancestor, data["mean_attention_distance"], eps=args.eps, min_heads=args.min_heads,
        centroid=args.centroid, ffn_groups=groups,
        provenance={"statistics": str(Path(args.stats).resolve()), "probe": data.get("probe", "")},
    )
    save_learngene(learngene, out, force=args.force)
    share = learngene.num_params / learngene.ancestor.num_params
    print(f"wrote {out}: {learngene.num_params:,} inherited values ({share:.1%} of the ancestor's "
          f"{learngene.ancestor.num_params:,}), FFN groups {learngene.ffn_groups}", file=sys.stderr)
    return 0
