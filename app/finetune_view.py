"""Widgets of the Fine-tune page: model source, dataset, recipe (paper defaults), launcher, launch."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import streamlit as st
import yaml

from app import launch, runs_view, state
from app.text import error_markdown, markdown_text
from learngene.cli.training import LAUNCHER_CHOICES, SUBMITIT_CLUSTERS
from learngene.errors import LearngeneError
from learngene.training.config import (
    AMP_CHOICES,
    BUILD,
    BUILTIN_DATASETS,
    DEVICE_CHOICES,
    FOLDER_DATASETS,
    MODEL,
    TORCHVISION_DATASETS,
    TrainConfig,
    field_kind,
    setting_of,
    text_parser,
    value_text,
)

LAST_DESCENDANT = "last_descendant"  # set by the Descendants page
SUBMITTED = "submitted_forms"
FOLDER = "an image folder (one sub-folder per class)…"


def model_source() -> dict[str, Any] | None:
    """Model fields of the config, or None after showing what is wrong."""
    kinds = {"descendant": "A saved descendant", "model": "A timm model with random weights (baseline / smoke test)"}
    kind = st.radio("Model", list(kinds), format_func=kinds.get, horizontal=True, key="ft_model_kind")
    if kind == "descendant":
        path = st.text_input("Descendant folder (written by the Descendants page or `learngene build`)",
                             value=state.remembered(LAST_DESCENDANT, ""), key="ft_descendant",
                             help=f"A relative folder is read under {state.descendants_root()}")
        if not path.strip():
            st.info("Build and save a descendant on the Descendants page, or type the folder of one.")
            return None
        # Checked here, not only by the run: a folder without a descendant's config.json passed the form, queued a
        # run that could only fail, and made "Launch one run per initialisation" raise a traceback.
        from learngene.descendant.config import DescendantConfig

        folder = state.descendant_folder(path)  # relative: under the descendants folder, as the Descendants page
        try:
            DescendantConfig.load(folder)
        except LearngeneError as error:
            st.error(f"{error_markdown(error)}. Build and save one on the Descendants page, or type the folder of a "
                     "saved descendant.")
            return None
        return {"descendant": str(folder)}
    name = st.text_input("timm model", value="vit_tiny_patch16_224", key="ft_model")
    if not name.strip():  # the config's own message names the CLI's flags (--descendant, --model, --ancestor)
        st.error("Type a timm model name, e.g. vit_tiny_patch16_224, or choose a saved descendant above.")
        return None
    args = st.text_input("Model arguments (YAML mapping)", value="{depth: 2, embed_dim: 64, num_heads: 2, patch_size: 8}",
                         key="ft_model_args", help="Passed to timm.create_model, e.g. {depth: 6}")
    try:
        kwargs = yaml.safe_load(args) or {}
        if not isinstance(kwargs, dict):
            raise ValueError("not a mapping")
    except (yaml.YAMLError, ValueError) as error:
        st.error(f"Model arguments must be a YAML mapping like {{depth: 2}} ({markdown_text(str(error))}).")
        return None
    return {"model": name.strip(), "model_kwargs": kwargs}


def dataset_fields() -> dict[str, Any]:
    options = list(BUILTIN_DATASETS) + list(TORCHVISION_DATASETS) + list(FOLDER_DATASETS) + [FOLDER]
    labels = {d: f"{d} (built in, offline)" for d in BUILTIN_DATASETS}
    labels.update({d: f"{d} (torchvision, downloads once)" for d in TORCHVISION_DATASETS})
    labels.update({d: f"{d} (needs its image folder)" for d in FOLDER_DATASETS})
    choice = st.selectbox("Dataset", options, format_func=lambda d: labels.get(d, d), key="ft_dataset")
    fields: dict[str, Any] = {}
    if choice == FOLDER:
        fields["dataset"] = st.text_input("Image folder", key="ft_folder").strip()
    else:
        fields["dataset"] = choice
    if choice in TORCHVISION_DATASETS or choice in FOLDER_DATASETS:
        root = st.text_input("Data root", key="ft_data_root", help="Where the dataset is (or is downloaded to)")
        fields["data_root"] = root.strip() or None
    return fields


def descendant_img_size(model: dict[str, Any] | None) -> int | None:
    """The resolution a saved descendant was built for (the recipe's default then), or None."""
    from learngene.descendant.config import DescendantConfig
    from learngene.errors import LearngeneError

    if not model or not model.get("descendant"):
        return None
    try:
        return DescendantConfig.load(model["descendant"]).timm.img_size
    except LearngeneError:
        return None


def _label(name: str) -> str:
    spec = setting_of(name)
    return spec.label or name.replace("_", " ").capitalize()


def _help(name: str) -> str:
    return setting_of(name).help


# Recipe presets. "Quick look (CPU)" is the recipe of docs/results.md's CPU table run shorter: 28 px (2 x 2
# patches), batch 32, 150 steps at peak lr 1e-4 (base lr 1.6e-3 x 32 / 512), no heavy augmentation. Measured here:
# a 6-layer cluster-learngene descendant of the built-in ancestor reached 81.9 % top-1 on digits in 5.7 minutes of
# a 2-core machine that was running the test suite at the same time (docs/benchmarks.md). The paper's recipe (224 px,
# RandAugment, mixup, 100 epochs) needs a GPU: on CPU a short run of it stays near chance.
PAPER, QUICK = "Paper (GPU)", "Quick look (CPU)"
PRESETS: dict[str, dict[str, Any]] = {
    PAPER: {},  # TrainConfig's defaults
    QUICK: {"epochs": 100, "max_steps": 150, "batch_size": 32, "img_size": 28, "base_lr": 1.6e-3,
            "warmup_epochs": 0.5, "mixup": 0.0, "cutmix": 0.0, "reprob": 0.0, "randaugment": "none",
            "device": "cpu", "workers": 0},
}
PRESET_SHOWN = "ft_preset_shown"  # the preset last applied (a deselecting click goes back to it)
# Widget key of each recipe field drawn in the main grid.
RECIPE_KEYS = {"epochs": "ft_epochs", "max_steps": "ft_max_steps", "batch_size": "ft_batch", "img_size": "ft_img",
               "base_lr": "ft_lr", "warmup_epochs": "ft_warmup", "weight_decay": "ft_wd", "label_smoothing": "ft_ls",
               "mixup": "ft_mixup", "cutmix": "ft_cutmix", "reprob": "ft_reprob", "randaugment": "ft_ra",
               "amp": "ft_amp", "device": "ft_device", "workers": "ft_workers", "seed": "ft_seed"}
# Every widget of the page that is remembered across page switches and restarts (not the descendant folder, which
# follows the last build).
FORM_KEYS = ("ft_preset", "ft_model_kind", "ft_model", "ft_model_args", "ft_dataset", "ft_folder", "ft_data_root",
             "ft_launcher", "ft_nproc", "ft_partition", "ft_nodes", "ft_gpn", "ft_time", "ft_cluster", "ft_name",
             *RECIPE_KEYS.values(), *(f"ft_more_{f.name}" for f in dataclasses.fields(TrainConfig)))


def _widget_value(field: str, value: Any) -> Any:
    """A recipe value as its widget holds it (0 = all steps, -1 = automatic workers, floats for float inputs)."""
    if field == "max_steps":
        return int(value or 0)
    if field == "workers":
        return -1 if value is None else int(value)
    if field == "randaugment":
        return "none" if value is None else str(value)
    default = getattr(TrainConfig(), field)
    return float(value) if isinstance(default, float) else value


def apply_preset() -> None:
    """on_change of the preset: put its values (or the paper's defaults) into the recipe's widgets."""
    ss = st.session_state
    if ss.get("ft_preset") is None:
        # A second click on the selected segment deselects it: keep the preset (the recipe is unchanged). Without
        # this the lookup below raised KeyError: None into the server log.
        ss["ft_preset"] = ss.get(PRESET_SHOWN, PAPER)
        return
    ss[PRESET_SHOWN] = ss["ft_preset"]
    preset = PRESETS[ss["ft_preset"]]
    defaults = TrainConfig()
    for field, key in RECIPE_KEYS.items():
        if field == "img_size" and field not in preset:
            st.session_state.pop(key, None)  # back to the descendant's own resolution
            continue
        st.session_state[key] = _widget_value(field, preset.get(field, getattr(defaults, field)))


def preset_picker() -> str:
    """The recipe preset; choosing one fills the recipe below (every value stays editable)."""
    st.session_state.setdefault(PRESET_SHOWN, st.session_state.get("ft_preset") or PAPER)
    return st.segmented_control("Preset", list(PRESETS), key="ft_preset", on_change=apply_preset,
                                default=PAPER, help="Quick look (CPU) learns within minutes on a CPU; Paper (GPU) is "
                                "the paper's downstream recipe") or PAPER


def recipe_warnings(config: TrainConfig, preset: str) -> None:
    """Say before Launch what would make the run disappoint."""
    if config.warmup_epochs >= config.epochs:
        st.warning(f"Warm-up ({config.warmup_epochs:g} epochs) is as long as the run ({config.epochs} epochs): the "
                   "learning rate never reaches its peak. Shorten the warm-up or train longer.")
    on_cpu = config.device == "cpu" or (config.device == "auto" and not runs_view.manager().gpus)
    if on_cpu and preset == PAPER and config.img_size >= 112:
        st.warning(f"The paper's recipe at {config.img_size} px on a CPU trains a few images a second and a short "
                   "run of it stays near chance (14 % top-1 on digits after 4 epochs at 112 px, 11.5 minutes). "
                   f"Choose the {QUICK} preset to see learning within minutes.")


# The main grid of the recipe: (field, widget key) in rows of four; the widgets are tuned by hand (ranges, the
# "0 = all" and "-1 = auto" conventions), their labels and help come from the fields' settings.
MAIN_RECIPE = ("epochs", "max_steps", "batch_size", "img_size", "base_lr", "warmup_epochs", "weight_decay",
               "label_smoothing", "mixup", "cutmix", "reprob", "randaugment", "amp", "device", "workers", "seed")
# Fields set by the model and data widgets above the recipe.
FORM_FIELDS = ("descendant", "model", "model_kwargs", "dataset", "data_root")


def recipe_fields(img_size: int | None = None) -> dict[str, Any] | None:
    """The recipe, prefilled with the paper's defaults (TrainConfig's); the resolution follows the descendant.

    Every field without a widget of its own (and not a build-at-start option: the page trains saved descendants)
    appears under "More settings", generated from the field's type and settings, so a new setting shows up here
    without editing the page. Returns None after showing an error for unreadable text.
    """
    d = TrainConfig()
    c = st.columns(4)
    fields = {
        "epochs": c[0].number_input(_label("epochs"), 1, 10_000, d.epochs, key="ft_epochs", help=_help("epochs")),
        "max_steps": c[1].number_input("Max steps (0 = all)", 0, 10_000_000, 0, key="ft_max_steps",
                                       help=_help("max_steps")) or None,
        "batch_size": c[2].number_input(_label("batch_size"), 1, 4096, d.batch_size, key="ft_batch",
                                        help=_help("batch_size")),
        "img_size": c[3].number_input(_label("img_size"), 8, 1024, img_size or d.img_size, step=1, key="ft_img",
                                      help=_help("img_size")),
    }
    c = st.columns(4)
    fields["base_lr"] = c[0].number_input(_label("base_lr"), 0.0, 1.0, d.base_lr, format="%.2e", key="ft_lr",
                                          help=_help("base_lr"))
    fields["warmup_epochs"] = c[1].number_input(_label("warmup_epochs"), 0.0, 1000.0, d.warmup_epochs,
                                                key="ft_warmup", help=_help("warmup_epochs"))
    fields["weight_decay"] = c[2].number_input(_label("weight_decay"), 0.0, 10.0, d.weight_decay, key="ft_wd",
                                               help=_help("weight_decay"))
    fields["label_smoothing"] = c[3].number_input(_label("label_smoothing"), 0.0, 0.99, d.label_smoothing,
                                                  key="ft_ls", help=_help("label_smoothing"))
    c = st.columns(4)
    fields["mixup"] = c[0].number_input(_label("mixup"), 0.0, 10.0, d.mixup, key="ft_mixup", help=_help("mixup"))
    fields["cutmix"] = c[1].number_input(_label("cutmix"), 0.0, 10.0, d.cutmix, key="ft_cutmix", help=_help("cutmix"))
    fields["reprob"] = c[2].number_input(_label("reprob"), 0.0, 1.0, d.reprob, key="ft_reprob", help=_help("reprob"))
    fields["randaugment"] = c[3].text_input(_label("randaugment"), d.randaugment, key="ft_ra",
                                            help=_help("randaugment"))
    c = st.columns(4)
    fields["amp"] = c[0].selectbox(_label("amp"), AMP_CHOICES, key="ft_amp", help=_help("amp"))
    fields["device"] = c[1].selectbox(_label("device"), DEVICE_CHOICES, key="ft_device", help=_help("device"))
    fields["workers"] = c[2].number_input("Data workers (-1 = auto)", -1, 64, -1, key="ft_workers",
                                          help=_help("workers"))
    fields["seed"] = c[3].number_input(_label("seed"), 0, 2**31 - 1, d.seed, key="ft_seed", help=_help("seed"))
    if fields["workers"] < 0:
        fields["workers"] = None
    fields = {k: (int(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in fields.items()}
    more = more_settings(exclude=set(fields) | set(FORM_FIELDS))
    return None if more is None else {**fields, **more}


def more_settings(exclude: set[str]) -> dict[str, Any] | None:
    """A widget per remaining TrainConfig field (checkbox, choice or the flag's text), in an expander."""
    d = TrainConfig()
    fields: dict[str, Any] = {}
    errors = []
    with st.expander("More settings (each is a `learngene train` flag)"):
        for f in dataclasses.fields(TrainConfig):
            spec = setting_of(f.name)
            if f.name in exclude or spec.group in (MODEL, BUILD):
                continue
            default, kind, key = getattr(d, f.name), field_kind(f.name), f"ft_more_{f.name}"
            if kind.base is bool:
                fields[f.name] = st.checkbox(_label(f.name), default, key=key, help=spec.help)
            elif spec.choices and not kind.optional:
                fields[f.name] = st.selectbox(_label(f.name), spec.choices, spec.choices.index(default), key=key,
                                              help=spec.help)
            else:
                text = st.text_input(_label(f.name), value_text(f.name, default), key=key, help=spec.help)
                try:
                    fields[f.name] = text_parser(f.name)(text)
                except argparse.ArgumentTypeError as error:
                    errors.append(f"{_label(f.name)}: {error}")
    if errors:
        st.error(markdown_text("; ".join(errors)))
        return None
    return fields


def launcher_fields() -> tuple[str, dict[str, Any]]:
    names = {"local": "Local process", "torchrun": "torchrun (this machine's GPUs / several nodes)",
             "slurm": "SLURM (submitit)"}
    kind = st.radio("Launcher", LAUNCHER_CHOICES, format_func=lambda k: names.get(k, k), horizontal=True,
                    key="ft_launcher")
    options: dict[str, Any] = {}
    if kind == "torchrun":
        gpus = runs_view.manager().gpus
        st.caption(f"GPUs visible: {', '.join(gpus) if gpus else 'none (CPU processes, gloo backend)'}; "
                   "the queue gives each run free GPUs.")
        options["nproc_per_node"] = int(st.number_input("Processes per node", 1, 64, max(1, len(gpus) or 1), key="ft_nproc"))
    elif kind == "slurm":
        c = st.columns(4)
        options["partition"] = c[0].text_input("Partition", key="ft_partition").strip() or None
        options["nodes"] = int(c[1].number_input("Nodes", 1, 512, 1, key="ft_nodes"))
        options["gpus_per_node"] = int(c[2].number_input("GPUs per node", 0, 16, 1, key="ft_gpn"))
        options["time_min"] = int(c[3].number_input("Time limit (min)", 1, 100_000, 60, key="ft_time"))
        options["cluster"] = st.selectbox("submitit cluster", SUBMITIT_CLUSTERS, key="ft_cluster",
                                          help="local runs the SLURM-shaped job on this machine")
    return kind, options


def make_config(fields: dict[str, Any]) -> TrainConfig | None:
    try:
        return TrainConfig.from_dict({**TrainConfig().to_dict(), **fields}).validate()
    except LearngeneError as error:
        st.error(error_markdown(error))
        return None


def launch_button(config: TrainConfig, name: str | None, launcher: str, options: dict[str, Any], label: str,
                  key: str) -> str | None:
    """Show the equivalent command and a launch button; submit once per filled-in form."""
    if not st.button(label, type="primary", key=key):
        return None
    submitted = st.session_state.setdefault(SUBMITTED, {})
    token = launch.form_token(config.to_dict(), name, launcher, options)
    try:
        run_id, new = launch.submit(runs_view.manager(), config, name, launcher, options, submitted, token)
    except LearngeneError as error:
        st.error(error_markdown(error))
        return None
    if new:
        st.success(f"Queued run {run_id}: follow it on the Runs page.")
    else:
        st.info(f"This exact run was already launched from this page ({run_id}); change a setting to launch another.")
    st.session_state["selected_run"] = run_id
    return run_id


def compare_initialisations(config: TrainConfig, name: str | None, launcher: str, options: dict[str, Any],
                            choice) -> None:
    """Launch the same recipe once per chosen initialisation of the same descendant design."""
    from app import descendant_view
    from learngene.descendant import INIT_METHODS

    st.subheader("Compare initialisations")
    if not config.descendant:
        st.caption("Choose a saved descendant above to compare its initialisations.")
        return
    methods = [m for m in INIT_METHODS if m != "ancestor"]
    inits = st.multiselect("Initialisations (each builds the same design with another init, then one run each)",
                           methods, default=["cluster-learngene", "scratch"], key="ft_compare_inits")
    if not inits or not st.button("Launch one run per initialisation", key="launch_compare"):
        return
    with st.spinner("Building one descendant per initialisation…"):
        folders = descendant_view.variants(config.descendant, inits, choice)
    submitted = st.session_state.setdefault(SUBMITTED, {})
    for init, folder in zip(inits, folders, strict=False):
        variant = TrainConfig.from_dict({**config.to_dict(), "descendant": folder})
        label = f"{name or 'compare'}-{init}"
        token = launch.form_token(variant.to_dict(), label, launcher, options)
        try:
            run_id, _ = launch.submit(runs_view.manager(), variant, label, launcher, options, submitted, token)
        except LearngeneError as error:
            st.error(error_markdown(error))
            return
        st.success(f"{init}: run {run_id}")


# The estimate: a few real optimizer steps of the chosen model, timed in a background job (the page stays usable).
# The timing depends only on what one step computes; the epochs and max steps are applied to the measured step time
# on every rerun, so changing them needs no new timing.
ESTIMATE_STEPS, ESTIMATE_WARMUP = 3, 1
STEP_FIELDS = ("descendant", "model", "model_kwargs", "dataset", "data_root", "val_fraction", "img_size",
               "batch_size", "accum_steps", "device", "amp", "mixup", "cutmix", "ema", "clip_grad")


def estimate_key(config: TrainConfig) -> str:
    """The job key of ``config``'s timing: what one training step computes and on which device."""
    import json

    return "estimate:" + json.dumps({f: getattr(config, f) for f in STEP_FIELDS}, sort_keys=True, default=str)


def _duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 2 * 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def estimate_duration(config: TrainConfig) -> None:
    """An "Estimate duration" button that times the chosen model's step on the chosen device, then the estimate."""
    from app import jobs
    from learngene.training.timing import estimate_run, planned_steps

    key = estimate_key(config)
    job = jobs.board.get(key)
    if st.button("Estimate duration", key="ft_estimate",
                 help=f"Times {ESTIMATE_STEPS} training steps (after {ESTIMATE_WARMUP} warm-up step) of this model at "
                 "this resolution and batch size on this device, in the background"):
        job = jobs.board.start(key, "Timing the training step",
                               lambda _progress: estimate_run(config, ESTIMATE_STEPS, ESTIMATE_WARMUP))
    if job is None:
        return
    if job.running:
        _follow_estimate(key)
    elif job.failed:
        st.error(markdown_text(job.error))
    else:
        measured = job.result
        try:  # the epochs and max steps of the form now, with the step time measured for this design
            _, total = planned_steps(config, measured.train_images)
        except LearngeneError as error:
            st.error(error_markdown(error))
            return
        st.info(f"Estimated duration: **{_duration_text(measured.seconds_per_step * total)} for {total:,} steps** "
                f"({measured.seconds_per_step:.2f} s/step measured on {measured.device}; evaluation and data "
                "loading not included).", icon=":material/timer:")


def _follow_estimate(key: str) -> None:
    from app import jobs

    jobs.follow(key, lambda job: st.info(
        f"Timing {ESTIMATE_STEPS} training steps in the background ({time.time() - job.started:.0f} s)…",
        icon=":material/hourglass_top:"))
