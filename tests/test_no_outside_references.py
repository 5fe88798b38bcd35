"""The project's files point only at the project: no team material outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"DESIGN\.md|\.\./shared/")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "gateway", "adapters", "docs", "schemas", "keys", "README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        ROOT / name for name in listed if (ROOT / name).suffix in (".py", ".md", ".xsd", ".toml")
    ]


def test_no_project_file_points_at_material_outside_the_repository() -> None:
    files = tracked_files()
    assert len(files) > 50  # the walk found the project
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == [], "point at docs/ instead: " + ", ".join(offenders)
