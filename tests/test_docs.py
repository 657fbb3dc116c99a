"""The docs name what exists: test files, and every rule that runs on the login node."""

from __future__ import annotations

import re

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks/README.md"]


def test_every_test_file_the_docs_name_exists():
    for doc in DOCS:
        for path in re.findall(r"\btests/[\w/]+\.py\b", doc.read_text()):
            assert (ROOT / path).is_file(), f"{doc.relative_to(ROOT)} names {path}"


def local_rules() -> set[str]:
    names = set()
    for source in [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").glob("*.smk"))]:
        for block in re.findall(r"^localrules:\n((?:    .*\n)+)", source.read_text(), re.M):
            names |= {name.strip(" ,") for name in block.split() if name.strip(" ,")}
    return names


def test_the_cluster_docs_name_every_local_rule():
    names = local_rules()
    assert {"plot_run", "compare_runs", "plan_fixes"} <= names
    text = (ROOT / "docs/cluster.md").read_text()
    assert not [name for name in names if f"`{name}`" not in text]
