"""The saved session (choice, thresholds, forms, last descendant) under several sessions of one server at once."""

from __future__ import annotations

import json
import threading


def test_sessions_saving_at_once_lose_nothing_and_never_fail(tmp_path, monkeypatch):
    """Found while auditing the app: every session is a thread of one server process, and each saved the one file
    through the same temporary name and a read-modify-write. Four sessions saving together failed hundreds of times
    with FileNotFoundError (a traceback in the page) and kept only some of their changes."""
    from app import state

    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path))
    errors: list[str] = []
    start = threading.Barrier(4)

    def session(number: int) -> None:
        start.wait()
        for value in range(60):
            try:
                state.remember(f"session {number}", value)
            except Exception as error:  # noqa: BLE001 (any failure is the finding)
                errors.append(repr(error))

    threads = [threading.Thread(target=session, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    saved = json.loads((tmp_path / "app" / "session.json").read_text())
    assert saved["remembered"] == {f"session {n}": 59 for n in range(4)}


def test_the_atomic_writer_serves_threads_writing_one_file(tmp_path):
    """learngene.atomic named its temporary file after the process only: two threads of the server (two sessions,
    or two background jobs) writing the same file at once shared it, and one failed ('could not write ...')."""
    from learngene.atomic import write_json_atomic

    target = tmp_path / "shared.json"
    errors: list[str] = []
    start = threading.Barrier(4)

    def writer(number: int) -> None:
        start.wait()
        for value in range(100):
            try:
                write_json_atomic(target, {"writer": number, "value": value, "padding": "x" * 20_000})
            except Exception as error:  # noqa: BLE001 (any failure is the finding)
                errors.append(repr(error))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert json.loads(target.read_text())["value"] == 99
    assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary file left behind
