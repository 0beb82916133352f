"""Imports flow one way: the representation learners know nothing of RL or of the training loop (no
import of embodied.rl, embodied.encoder or embodied.train from embodied.agents, at module level or
inside a function)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("embodied.rl", "embodied.encoder", "stable_baselines3")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_agents_do_not_import_rl_or_the_encoder():
    files = sorted((ROOT / "embodied" / "agents").rglob("*.py"))
    assert files
    for path in files:
        bad = {
            m
            for m in imported_modules(path)
            if m.startswith(("embodied.rl", "embodied.encoder", "stable_baselines3"))
            or m == "embodied.train"
            or m.startswith("embodied.train.")
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    assert not (ROOT / "embodied" / "agents" / "sb3.py").exists()


def test_rl_scripts_do_not_edit_sys_path():
    for script in ("train_rl.py", "compare_rl.py"):
        text = (ROOT / "scripts" / script).read_text()
        assert "sys.path" not in text and "import train_rl" not in text, script
