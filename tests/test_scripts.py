"""Scripts are thin CLIs over the package: no ``sys.path`` edits, no script imported by another
(bench.py's own helpers bench_train / bench_tabletop aside), every ``main()`` returns an exit code."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))
HELPERS = {"bench.py": {"bench_train", "bench_tabletop"}}  # bench's sections, run as bench.py's siblings


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_is_thin(path):
    tree = ast.parse(path.read_text())
    assert "sys.path" not in path.read_text(), f"{path.name} edits sys.path"
    siblings = {p.stem for p in SCRIPTS} - HELPERS.get(path.name, set())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & siblings, f"{path.name} imports the scripts {sorted(imported & siblings)}"
    mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert len(mains) == 1, f"{path.name}: no main()"
    assert ast.unparse(mains[0].returns) == "int", f"{path.name}: main() -> {ast.unparse(mains[0].returns)}"
    returns = [n for n in ast.walk(mains[0]) if isinstance(n, ast.Return)]
    assert returns and all(isinstance(r.value, (ast.Constant, ast.Call, ast.IfExp)) for r in returns), path.name
