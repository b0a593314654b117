"""A report opens in headless Chromium (Debian's `chromium`), renders to a screenshot and logs nothing to
the console (no script errors)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from pipelines.storage.layout import REPORT_INDEX as INDEX, report_uri
from tests.pipelines.reports.report_checks import check_report

INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary, installed with apt-get when missing (.ci/run installs it before the tests)."""
    if shutil.which("chromium"):
        return shutil.which("chromium")
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and apt-get cannot install it here (needs apt-get as root); "
                    f"install it with `{' '.join(INSTALL)}`")
    for command in (INSTALL, ["apt-get", "update"], INSTALL):
        subprocess.run(command, capture_output=True, timeout=600)
        if shutil.which("chromium"):
            return shutil.which("chromium")
    pytest.skip(f"`{' '.join(INSTALL)}` did not install chromium (no package index reachable?)")


def screenshot(chromium: str, page: Path, png: Path, profile: Path, size: str = "1280,3400") -> str:
    """Render `page` headless to `png`; returns Chromium's stderr, where console messages appear as CONSOLE lines."""
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={png}", "--enable-logging=stderr",
         "--v=0", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_report_renders_in_chromium_without_console_messages(digits_zero_model, chromium, tmp_path):
    index = check_report(f"{report_uri(digits_zero_model['storage'], 'zeros-v1')}/{INDEX}", tmp_path / "report",
                         {"loss.png"})
    log = screenshot(chromium, index, tmp_path / "shot.png", tmp_path / "profile")
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    with Image.open(tmp_path / "shot.png") as shot:
        assert shot.size == (1280, 3400)
        assert len(shot.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16  # not a blank page
