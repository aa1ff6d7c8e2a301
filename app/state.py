"""What the user chose, kept in ``st.session_state`` and mirrored to disk so a refresh or a restart loses nothing.

Widget values vanish from session state when their page is not shown, so every choice that must outlive a page
switch lives under a plain key (``CHOICE``, ``EPS``, ...) and widgets are seeded from it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import streamlit as st

from learngene.atomic import write_json_atomic
from learngene.clustering import PAPER_EPS, PAPER_MIN_HEADS
from learngene.paths import cache_dir, runs_dir

CHOICE = "choice"
EPS, MIN_HEADS = "eps", "min_heads"
DEFAULT_EPS, DEFAULT_MIN_HEADS = PAPER_EPS, PAPER_MIN_HEADS


@dataclass(frozen=True)
class Choice:
    """The ancestor and probe images the analysis runs on (everything that decides the statistics)."""

    spec: str = "builtin"
    arch: str | None = None
    img_size: int | None = None
    probes: str = "builtin"  # "builtin" or a folder path
    num_images: int | None = None

    def key(self) -> str:
        """Stable identity of the statistics this choice produces (folder probes include their files' mtimes)."""
        data = asdict(self)
        data["probe_files"] = _fingerprint(self.probes) if self.probes != "builtin" else None
        data["weights"] = _fingerprint(self.spec.rpartition("@")[0]) if "@" in self.spec else None
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def label(self) -> str:
        probes = "built-in photos" if self.probes == "builtin" else self.probes
        return f"{self.spec} on {probes}"


def _fingerprint(path: str) -> list | None:
    target = Path(path).expanduser()
    try:
        files = [target] if target.is_file() else sorted(p for p in target.iterdir() if p.is_file())
        return [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in files]
    except OSError:
        return None


def app_dir() -> Path:
    path = cache_dir() / "app"
    path.mkdir(parents=True, exist_ok=True)
    return path


def descendants_root() -> Path:
    """Where the app saves descendants, and what a relative descendant folder typed on any page is relative to."""
    return runs_dir().parent / "descendants"


def descendant_folder(typed: str) -> Path:
    """The absolute folder a typed descendant folder means: ``~`` expanded, a relative one under
    :func:`descendants_root`. Relative to the server's working directory it would land in (or be read from) the
    app's own checkout, wherever the server happened to be started."""
    path = Path(typed.strip()).expanduser()
    return path if path.is_absolute() else descendants_root() / path


def _session_file() -> Path:
    return app_dir() / "session.json"


def _read_saved() -> dict:
    try:
        return json.loads(_session_file().read_text())
    except (OSError, ValueError):
        return {}


# Every session of the server is a thread of one process, and each change reads, edits and writes the one saved
# file: without this lock two tabs saving at once lost each other's change, or shared a temporary file and failed.
_saved_lock = threading.Lock()


def _update_saved(change: Callable[[dict], None]) -> None:
    """Apply ``change`` to the saved session and write it back (atomically, under :data:`_saved_lock`)."""
    with _saved_lock:
        saved = _read_saved()
        change(saved)
        write_json_atomic(_session_file(), saved, indent=1)


def current_choice() -> Choice:
    """The session's choice, else the last one saved on disk (restart), else the built-in defaults."""
    if CHOICE not in st.session_state:
        saved = _read_saved().get("choice")
        try:
            st.session_state[CHOICE] = Choice(**saved) if saved else Choice()
        except TypeError:
            st.session_state[CHOICE] = Choice()
    return st.session_state[CHOICE]


def set_choice(choice: Choice) -> None:
    st.session_state[CHOICE] = choice
    _update_saved(lambda saved: saved.update(choice=asdict(choice)))


def thresholds() -> tuple[float, int]:
    """Current (eps, min_heads); restored from disk after a restart."""
    if EPS not in st.session_state:
        saved = _read_saved()
        st.session_state[EPS] = float(saved.get(EPS, DEFAULT_EPS))
        st.session_state[MIN_HEADS] = int(saved.get(MIN_HEADS, DEFAULT_MIN_HEADS))
    return float(st.session_state[EPS]), int(st.session_state[MIN_HEADS])


def fit_min_heads(num_heads: int) -> None:
    """Lower a saved MinHds above ``num_heads`` (kept from an ancestor with more heads) to ``num_heads``, so every
    page shows and uses the same value (the Heads page's slider cannot show more than the ancestor's heads)."""
    eps, min_heads = thresholds()
    if min_heads > num_heads:
        set_thresholds(eps, num_heads)


def set_thresholds(eps: float, min_heads: int) -> None:
    st.session_state[EPS], st.session_state[MIN_HEADS] = float(eps), int(min_heads)
    _update_saved(lambda saved: saved.update({EPS: float(eps), MIN_HEADS: int(min_heads)}))


def with_changes(choice: Choice, **changes) -> Choice:
    return replace(choice, **changes)


def remembered(key: str, default=None):
    """A value kept in the session and on disk (e.g. the last descendant built), restored after a restart."""
    if key not in st.session_state:
        value = _read_saved().get("remembered", {}).get(key)
        if value is None:
            return default
        st.session_state[key] = value
    return st.session_state[key]


def remember(key: str, value) -> None:
    st.session_state[key] = value
    _update_saved(lambda saved: saved.setdefault("remembered", {}).update({key: value}))


# -- forms remembered across page switches and restarts ------------------------------------------------------------
FORMS = "forms"


def restore_form(name: str, keys) -> None:
    """Seed the widget ``keys`` of form ``name`` from disk where the session lacks them.

    Streamlit forgets a widget's value when its page is not drawn, and a restart forgets everything; the design form
    and the fine-tune recipe are therefore mirrored to disk (:func:`save_form`) and put back before their widgets
    are drawn, like the thresholds.
    """
    saved = _read_saved().get(FORMS, {}).get(name, {})
    for key in keys:
        if key not in st.session_state and key in saved:
            st.session_state[key] = saved[key]


def save_form(name: str, keys) -> None:
    """Mirror the current values of the widget ``keys`` of form ``name`` to disk (only when they changed)."""
    values = {}
    for key in keys:
        value = st.session_state.get(key)
        if isinstance(value, (str, int, float, bool)) or value is None:
            if key in st.session_state:
                values[key] = value
    if _read_saved().get(FORMS, {}).get(name) != values:
        _update_saved(lambda saved: saved.setdefault(FORMS, {}).update({name: values}))
