"""The repository carries the licence setup.cfg declares: the complete EUPL v. 1.2 text."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_file_is_the_whole_eupl_1_2_that_setup_cfg_declares() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "EUPL-1.2"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("EUROPEAN UNION PUBLIC LICENCE v. 1.2")
    articles = [int(n) for n in re.findall(r"^(\d+)\. [A-Z]", text, flags=re.M)]
    assert articles == list(range(1, 16))
    assert "\nAppendix\n" in text
    assert text.rstrip().endswith("new EUPL version.")
