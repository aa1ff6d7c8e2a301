"""Widgets of the Ancestor page: the ancestor/probe form, the architecture card, the statistics panel."""

from __future__ import annotations

import streamlit as st

from app import resources, state
from app.state import Choice
from app.text import error_markdown, markdown_text
from learngene.errors import LearngeneError

SOURCES = {
    "builtin": "Built-in (offline DINOv2 ViT-S/14, 224 px)",
    "hub": "timm model by name (downloads when online)",
    "path": "Local weights file (path)",
    "upload": "Upload a weights file",
}
HUB_MODELS = ["deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224", "other timm ViT…"]
PROBE_SOURCES = {"builtin": "Built-in photos (offline)", "folder": "A folder of images", "upload": "Upload images"}
UPLOADED_AS = "uploaded_as"  # where this session's uploads were stored -> how the user knows them


def _remember_upload(path, what: str) -> None:
    """Name the stored copy of an upload as the user knows it, for the messages about it (see :func:`_in_words`)."""
    st.session_state.setdefault(UPLOADED_AS, {})[str(path)] = what


def _in_words(message: str) -> str:
    """``message`` with the app's cache paths of this session's uploads replaced by what was uploaded: an error
    about an upload named a folder like ~/.cache/learngene/app/uploads/probes/f18cd961e920 the user never saw."""
    for path, what in st.session_state.get(UPLOADED_AS, {}).items():
        message = message.replace(path, what)
    return message


def _source_of(choice: Choice) -> str:
    if choice.spec == "builtin":
        return "builtin"
    return "path" if "@" in choice.spec else "hub"


def choice_form(current: Choice) -> Choice | None:
    """Draw the form; on submit return the requested Choice (not yet validated), else None."""
    source = st.radio("Ancestor", list(SOURCES), format_func=SOURCES.get, index=list(SOURCES).index(_source_of(current)),
                      horizontal=True, key="ancestor_source")
    spec = arch = None
    upload = None
    if source == "hub":
        default = current.spec if _source_of(current) == "hub" else HUB_MODELS[1]
        pick = st.selectbox("Model", HUB_MODELS, index=HUB_MODELS.index(default) if default in HUB_MODELS else 3)
        spec = st.text_input("timm model name", value=default if default not in HUB_MODELS else "",
                             placeholder="e.g. vit_small_patch16_224.augreg_in21k") if pick == HUB_MODELS[3] else pick
    elif source in ("path", "upload"):
        path_part, _, arch_part = current.spec.rpartition("@") if "@" in current.spec else ("", "", "")
        if source == "path":
            spec = st.text_input("Weights file (.safetensors, .pth, .pt, .bin) or a folder holding one", value=path_part)
        else:
            upload = st.file_uploader("Weights file", type=["safetensors", "pth", "pt", "bin"], key="weights_upload")
        arch = st.text_input("Its timm architecture", value=arch_part or "deit_small_patch16_224")
    img_size = st.number_input("Input resolution (0 = the model's own)", 0, 1024, int(current.img_size or 0), step=16)

    probe_kind_default = "builtin" if current.probes == "builtin" else "folder"
    probe_kind = st.radio("Probe images", list(PROBE_SOURCES), format_func=PROBE_SOURCES.get, horizontal=True,
                          index=list(PROBE_SOURCES).index(probe_kind_default), key="probe_source")
    folder = None
    uploads = None
    if probe_kind == "folder":
        folder = st.text_input("Image folder (searched recursively)", value="" if current.probes == "builtin" else current.probes)
    elif probe_kind == "upload":
        uploads = st.file_uploader("Probe images", type=["jpg", "jpeg", "png", "webp", "bmp"],
                                   accept_multiple_files=True, key="probe_upload")
    num_images = st.number_input("Number of probe images (0 = all)", 0, 100_000, int(current.num_images or 0))

    if not st.button("Use this ancestor", type="primary", key="use_ancestor"):
        return None
    if source == "builtin":
        spec = "builtin"
    elif source == "hub":
        if not spec or not spec.strip():
            st.error("Type a timm model name, e.g. deit_small_patch16_224.")
            return None
        spec = spec.strip()
    else:
        if source == "upload":
            if upload is None:
                st.error("Choose a weights file to upload first (.safetensors, .pth, .pt or .bin).")
                return None
            path = resources.save_upload(upload.getvalue(), upload.name, "weights")
            _remember_upload(path, f"the uploaded {upload.name}")
        else:
            if not spec or not spec.strip():
                st.error("Type the path of a weights file, e.g. ~/models/deit_small.pth.")
                return None
            path = spec.strip()
        if not arch or not arch.strip():
            st.error("Name the file's timm architecture, e.g. deit_small_patch16_224.")
            return None
        spec = f"{path}@{arch.strip()}"
    if probe_kind == "builtin":
        probes = "builtin"
    elif probe_kind == "folder":
        if not folder or not folder.strip():
            st.error("Type a folder of images, or choose the built-in photos.")
            return None
        probes = folder.strip()
    else:
        if not uploads:
            st.error("Upload at least one image (jpg, png, webp, bmp), or choose the built-in photos.")
            return None
        probes = str(resources.save_upload_folder([(f.name, f.getvalue()) for f in uploads]))
        _remember_upload(probes, f"the {len(uploads)} uploaded image(s)")
    return Choice(spec=spec, arch=None, img_size=int(img_size) or None, probes=probes, num_images=int(num_images) or None)


def apply_choice(choice: Choice) -> bool:
    """Load the ancestor and the probe images; keep the choice only if both work, else show why."""
    try:
        resources.ancestor_for(choice)
        resources.probes_for(choice)
    except LearngeneError as error:
        st.error(error_markdown(_in_words(str(error))))
        return False
    except Exception as error:  # a corrupt file or an unexpected model: the page must keep working
        st.error(markdown_text(_in_words(f"Could not load {choice.spec}: {error}. Check the file and its architecture name.")))
        return False
    state.set_choice(choice)
    return True


def architecture_card(summary) -> None:
    st.subheader(f"{summary.arch}" + (" (pretrained)" if summary.pretrained else " (random weights)"))
    cols = st.columns(7)
    values = [("Layers", summary.num_layers), ("Heads / layer", summary.num_heads), ("Width", summary.embed_dim),
              ("Head dim", summary.head_dim), ("Patch", f"{summary.patch_size} px"),
              ("Resolution", f"{summary.img_size} px"), ("Parameters", f"{summary.num_params / 1e6:.2f} M")]
    for col, (label, value) in zip(cols, values, strict=True):
        col.metric(label, value)
    st.caption(
        f"grid {summary.grid_size[0]}x{summary.grid_size[1]}, {summary.num_prefix_tokens} prefix token(s), "
        f"MLP {summary.mlp_hidden_dim}, layer scale {'yes' if summary.layer_scale else 'no'}, "
        f"qkv bias {'yes' if summary.qkv_bias else 'no'}, {summary.num_params:,} parameters"
    )


def current_statistics(choice: Choice):
    """Statistics uploaded in this session (when they fit the ancestor), else those saved for ``choice``, else None."""
    from app.uploaded_stats import SESSION_KEY, uploaded_statistics

    if st.session_state.get(SESSION_KEY):
        try:
            uploaded = uploaded_statistics(resources.summary_for(choice))
        except LearngeneError:
            uploaded = None
        if uploaded is not None:
            return uploaded
    return resources.saved_statistics(choice)


def ensure_statistics(choice: Choice, *, auto: bool):
    """The statistics for ``choice`` if they exist (memory or disk); else None, after showing how they come.

    They are computed by a background job (:mod:`app.jobs`) shared by every session: started on a button press, or
    at once with ``auto``. While it runs, a progress bar follows it (it survives reruns, page switches and browser
    refreshes) and the page reruns by itself when the job ends.
    """
    from app import jobs

    stats = current_statistics(choice)
    if stats is not None:
        return stats
    job = jobs.board.get(resources.statistics_job_key(choice))
    if job is not None and job.finished and not job.failed:
        jobs.board.forget(job.key)  # succeeded, yet the file is gone (deleted meanwhile): offer to compute again
        job = None
    if job is None or job.failed:
        if job is not None:
            st.error(f"Computing the statistics failed: {markdown_text(job.error)}")
        if not auto and not st.button("Compute statistics", type="primary", key="compute_stats"):
            st.info("No statistics for this ancestor and probe set yet: compute them (once; they are saved). "
                    "The work runs in the background: you may keep using the app meanwhile.")
            return None
        try:
            with st.spinner("Loading the ancestor and probe images…"):
                job = resources.start_statistics_job(choice)
        except LearngeneError as error:
            st.error(error_markdown(error))
            return None
    statistics_progress(resources.statistics_job_key(choice))
    return None


def statistics_progress(key: str) -> None:
    """A progress bar that follows the job ``key`` and reruns the page once it has finished."""
    from app import jobs

    def draw(job) -> None:
        text = (f"{job.label}: {job.done}/{job.total} images (computing in the background)" if job.total
                else f"{job.label}: starting…")
        st.progress(job.fraction, text=text)

    jobs.follow(key, draw)


def statistics_panel(stats) -> None:
    mad = stats.mean_attention_distance
    cols = st.columns(4)
    cols[0].metric("Probe images", stats.num_images)
    cols[1].metric("Heads", mad.size)
    cols[2].metric("MAD range", f"{mad.min():.0f}–{mad.max():.0f} px")
    cols[3].metric("Mean entropy", f"{float(stats.entropy.mean()):.2f} nats")
    st.caption(stats.probe)
