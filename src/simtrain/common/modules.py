"""Which library files a job runs: the rules list them as inputs, so editing one reruns its jobs.

Found by reading the `import` statements (also those inside functions) of an entry module and
following them through the package, so a rule can never forget a module it really imports.
"""

from __future__ import annotations

import ast
import os
import re
from functools import cache
from pathlib import Path

PACKAGE = "simtrain"
ROOT = Path(__file__).resolve().parents[1]  # src/simtrain
# The import statements that name the package, at any indentation (inside functions too); a
# parenthesised list of names may span lines. Every Snakemake start-up (each cluster job step
# too) reads the imports of every rule's code: parsing only these statements, not whole files,
# takes a tenth of the time.
_IMPORT_STATEMENT = re.compile(
    rf"^[ \t]*(from[ \t]+{PACKAGE}\b[\w.]*[ \t]+import[ \t]+(?:\([^)]*\)|.*)"
    rf"|import[ \t]+{PACKAGE}\b.*)$",
    re.MULTILINE,
)


@cache
def module_path(module: str) -> Path:
    """src/simtrain/a/b.py or src/simtrain/a/b/__init__.py for "simtrain.a.b"."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise ValueError(f"{module!r} is not a module of {PACKAGE}")
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"module {module!r} not found under {ROOT}")


@cache
def _direct_imports(module: str) -> frozenset[str]:
    return imports_in(module_path(module))


def imports_in(path: str | Path) -> frozenset[str]:
    """The simtrain modules (and their parent packages) a Python file imports directly."""
    source = Path(path).read_text(encoding="utf-8")
    statements = "\n".join(m[1] for m in _IMPORT_STATEMENT.finditer(source))
    try:
        tree = ast.parse(statements)
    except SyntaxError:  # a statement the pattern cut short: read the whole file
        tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from simtrain.x import y` may name a submodule y or an attribute of x.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != PACKAGE:
                continue
            parts = name.split(".")
            # A module's parent packages run their __init__ first.
            for end in range(1, len(parts) + 1):
                prefix = ".".join(parts[:end])
                try:
                    module_path(prefix)
                except ValueError:
                    break
                found.add(prefix)
    return frozenset(found)


def module_files(*modules: str, script: str | Path | None = None) -> list[str]:
    """The files of `modules` (and of what `script` imports) and of every simtrain module
    they import, transitively; sorted."""
    seen: set[str] = set()
    stack = [
        m if m.startswith(f"{PACKAGE}.") or m == PACKAGE else f"{PACKAGE}.{m}" for m in modules
    ]
    if script is not None:
        stack.extend(imports_in(script))
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        stack.extend(_direct_imports(module) - seen)
    return sorted(str(module_path(module)) for module in seen)


def workflow_input(path: str | os.PathLike, workdir: str | os.PathLike) -> str:
    """`path` as a rule input: relative to the working directory when it lies inside it, so
    a checkout moved or copied with its results reruns nothing (Snakemake records inputs by
    name); absolute otherwise, so results kept apart from the code can move on their own."""
    path, workdir = Path(path).resolve(), Path(workdir).resolve()
    return str(path.relative_to(workdir)) if path.is_relative_to(workdir) else str(path)
