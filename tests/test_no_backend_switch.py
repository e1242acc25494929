"""Importing robustlens (and drawing its figures) must not switch matplotlib's backend:
notebook users keep their inline backend."""

from __future__ import annotations

import subprocess
import sys


def test_import_keeps_the_users_backend():
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import robustlens, robustlens.figures, robustlens.report.html, "
        "robustlens.regions.records, robustlens.representation.attacks, robustlens.images, robustlens.cli; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
