"""The package's shape: no import cycles, and nothing in mfr/ that exists only for the tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mfr"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """mfr module -> the mfr modules it imports (at any depth of its code, lazy imports too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    graph = _imports()
    assert "mfr.study.steps" in graph and graph["mfr.study.steps"]  # the walk sees the package
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_test_hooks_in_the_package():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"MFR_TEST|PYTEST|pytest", text), path


def test_the_cli_checks_arguments_before_any_slow_import():
    """Parsing every command's arguments and checking its inputs (a missing file, a bad
    number, a bad profile: the one-line errors) import no Keras, TensorFlow or JAX: the config,
    the registries and the backbones' facts are read without them."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from mfr.cli import COMMANDS, build_parser\n"
            "from mfr.commands._common import check_inputs\n"
            "from mfr.core.config import StudyConfig\n"
            "from mfr.backbones import backbone_names, get_backbone\n"
            "build_parser(COMMANDS)\n"
            "for n in backbone_names():\n"
            "    StudyConfig(backbone=n).used_by('train'); get_backbone(n).facts\n"
            "args = build_parser(('verify',)).parse_args(['verify', 'a.jpg', 'b.jpg'])\n"
            "try:\n"
            "    check_inputs(args)\n"
            "except Exception:\n"
            "    pass\n"
            "heavy = [m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
