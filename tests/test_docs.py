"""The front door stays true: README's size and CI blocks, links that resolve, generated tables current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_is_short_and_keeps_the_blocks_ci_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for name in ("classify", "test"):  # .ci/run extracts the ```bash block after each marker
        assert re.search(rf"^<!-- ci:{name} -->\n```bash\n", text, re.MULTILINE), name


def test_every_relative_link_resolves() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_the_cost_tables_in_docs_are_what_the_script_writes() -> None:
    spec = importlib.util.spec_from_file_location("cost_tables", ROOT / "scripts" / "cost_tables.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    current = script.DOC.read_text(encoding="utf-8")
    assert script.with_tables(current) == current, "run python scripts/cost_tables.py"
