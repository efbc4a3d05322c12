"""`fusionrec --help` stays instant: building the parser imports nothing heavy.

Regression: the parser's split choices came from ``fusionrec.data.splits``, which imported pandas through
the data package, and the version came from ``importlib.metadata`` at import: --help took 0.7–2 s.
Checked by what is imported (robust on a busy machine), not by timing.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pandas", "scipy", "torch", "importlib.metadata")


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_building_the_parser_imports_no_heavy_library():
    out = run_python(
        "import json, sys\n"
        "from fusionrec.cli import build_parser\n"
        "build_parser().format_help()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert json.loads(out) == []


def test_help_and_version_still_answer():
    proc = subprocess.run(
        [sys.executable, "-m", "fusionrec.cli", "--version"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.startswith("fusionrec ")
    out = run_python(
        "import sys\n"
        "from fusionrec.cli import main\n"
        "try:\n    main(['fit', '--help'])\nexcept SystemExit:\n    pass\n"
    )
    assert "--split" in out and "cold-items" in out  # split choices listed without importing the data layer
