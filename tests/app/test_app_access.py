"""Binding and access: loopback from any working directory; beyond it, nothing without the user's password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from apptest_support import MAIN, ROOT, TIMEOUT, assert_clean
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from app import serve


@pytest.fixture
def exposed(monkeypatch):
    """The app as if the server listened on every interface (restored afterwards)."""
    previous = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    monkeypatch.delenv(serve.PASSWORD_ENV, raising=False)
    yield monkeypatch
    st_config.set_option("server.address", previous)


def _titles(at) -> list[str]:
    return [t.value for t in at.title]


def test_exposed_without_a_password_shows_nothing_but_the_fix(exposed, saved_session):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert "Ancestor" not in _titles(at)
    assert not at.text_input  # no password form either: there is no password to enter
    (message,) = [e.value for e in at.error]
    assert "0.0.0.0" in message and serve.PASSWORD_ENV in message


def test_exposed_with_a_password_asks_for_it_first(exposed, saved_session):
    exposed.setenv(serve.PASSWORD_ENV, "correct horse")
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert "Ancestor" not in _titles(at)
    at.text_input(key="access_password").input("wrong")
    at.button[0].click().run()
    assert "Ancestor" not in _titles(at)
    assert any("Wrong password" in e.value for e in at.error)
    at.text_input(key="access_password").input("correct horse")
    at.button[0].click().run()
    assert_clean(at)
    assert "Ancestor" in _titles(at)


def test_loopback_shows_the_app_without_asking(saved_session):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert "Ancestor" in _titles(at) and not at.text_input


@pytest.mark.parametrize(("address", "local"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("", False),
                                                (None, False), ("::", False), ("192.168.1.5", False),
                                                ("example.org", False)])
def test_loopback_addresses(address, local):
    assert serve.is_loopback(address) is local


def test_launcher_refuses_to_share_without_a_password():
    env = {k: v for k, v in os.environ.items() if k != serve.PASSWORD_ENV}
    done = subprocess.run([sys.executable, "-m", "app.serve", "--host", "0.0.0.0", "--port", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and serve.PASSWORD_ENV in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if serve.is_loopback(address) else address


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port``, read from the kernel's tables."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_bare_streamlit_run_from_another_folder_binds_loopback(tmp_path):
    """``streamlit run <repo>/app/main.py`` from an unrelated folder, with no flags at all, listens on 127.0.0.1."""
    port = serve.free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.port", str(port),
               "--server.headless", "true"]
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        serve.wait_healthy(port, process)
        assert _listening_addresses(port) == {"127.0.0.1"}, log.read_text()
        outward = _outward_address()
        if outward:
            with pytest.raises(OSError):
                socket.create_connection((outward, port), timeout=2).close()
    finally:
        serve.stop(process)
