"""Start the app as a real server: ``make run`` (``python -m app.serve``), the browser test and the screenshot script.

One list of server flags (:func:`server_command`) for all of them. No shell is involved: the command is an argument
list. The server binds 127.0.0.1 unless asked otherwise, and any other address needs a password the user sets in
``LEARNGENE_APP_PASSWORD`` (checked here before starting, and by the app itself, see ``app/main.py``).

    python -m app.serve [--host 127.0.0.1] [--port 8501]
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


PASSWORD_ENV = "LEARNGENE_APP_PASSWORD"
LOOPBACK = "127.0.0.1"


def is_loopback(address: str | None) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost); False for None or "" (all
    interfaces) and anything else."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_problem(address: str | None, password: str | None) -> str | None:
    """Why serving on ``address`` must not start, or None. Beyond loopback, a password is required."""
    if is_loopback(address) or password:
        return None
    where = address or "all interfaces"
    return (f"the app would listen on {where}, reachable from other machines, without a password: "
            f"set {PASSWORD_ENV} to a password of your choice to share it "
            f"(e.g. {PASSWORD_ENV}=... make run HOST={address or '0.0.0.0'}), or keep the default HOST={LOOPBACK}")


def server_command(host: str = LOOPBACK, port: int = 8501) -> list[str]:
    """``python -m streamlit run app/main.py`` with every server flag explicit (none left to a config file)."""
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int, env: dict[str, str] | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """``python -m streamlit run app/main.py`` on 127.0.0.1:port, in its own process group."""
    command = server_command(LOOPBACK, port)
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60.0) -> float:
    """Seconds until ``/_stcore/health`` answers ok; RuntimeError if the server exits or never answers."""
    import urllib.request  # here, not at the top: app/main.py imports this module on every session's first run

    start_time = time.monotonic()
    while time.monotonic() - start_time < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start_time
        except OSError:
            pass
        time.sleep(0.05)  # a local request: polling often costs nothing and times the start to within 50 ms
    raise RuntimeError(f"streamlit did not answer on port {port} within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """Stop the server and whatever it started (its process group), politely first."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def metric_value(page, label: str) -> str:
    """Text of the st.metric whose label is ``label`` on a Playwright page."""
    metric = page.locator('[data-testid="stMetric"]', has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    return metric.locator('[data-testid="stMetricValue"]').first.inner_text()


def main(argv: list[str] | None = None) -> int:
    """``make run``: start the app in the foreground (exec, so Ctrl-C reaches Streamlit directly)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=LOOPBACK, help=f"address to listen on (default {LOOPBACK}; any other "
                                                         f"needs {PASSWORD_ENV})")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    problem = exposure_problem(args.host, os.environ.get(PASSWORD_ENV))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"warning: sharing the app on {args.host} over plain HTTP; visitors must enter {PASSWORD_ENV}",
              file=sys.stderr)
    command = server_command(args.host, args.port)
    os.chdir(ROOT)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
