"""The package's shape: no import cycles, small modules, one registry per extension kind,
the schema's enums equal to the built-in registries, rules one hop from their step."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from systpipe.config import schema_file
from systpipe.stat.methods import BUILTIN_METHODS
from systpipe.steps import STEPS
from systpipe.systematics import BUILTIN_KINDS

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "systpipe"
RULES = Path(__file__).resolve().parents[2] / "workflow" / "rules"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> systpipe modules it imports (module-level and function-level imports alike);
    a submodule importing one of its own parent packages is not an edge."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix, *(f"{prefix}.{a.name}" for a in node.names)]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert "systpipe.steps.scan" in graph and graph["systpipe.steps.scan"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= 600


def test_schema_enums_equal_the_builtin_registries():
    props = schema_file()["properties"]
    assert props["systematics"]["items"]["properties"]["type"]["enum"] == list(BUILTIN_KINDS)
    assert props["toys"]["properties"]["methods"]["items"]["enum"] == list(BUILTIN_METHODS)


def _rules() -> dict[str, dict[str, str]]:
    """rule name -> its step, code and settings params as written in the .smk files."""
    rules = {}
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n(?=\s*rule\b)", text):
            name = re.search(r"rule\s*(\w*):", block)
            step = re.search(r'step="(\w+)"', block)
            if not name or not step:
                continue
            rules[f"{smk.stem}:{name.group(1) or 'train'}"] = {
                "file": smk.stem,
                "step": step.group(1),
                "code": (re.search(r'code=step_fingerprint\("(\w+)"\)', block) or [None, None])[1],
                "settings": (re.search(r'settings=step_settings\("(\w+)"', block) or [None, None])[
                    1
                ],
            }
    return rules


def test_every_rule_runs_one_registered_step_one_hop_away():
    rules = _rules()
    assert len(rules) >= 19
    for key, rule in rules.items():
        step = STEPS[rule["step"]]
        assert rule["code"] == rule["step"] == rule["settings"], key
        # the rule file workflow/rules/<stage>.smk runs steps/<stage>.py
        assert step.module == f"systpipe.steps.{rule['file']}", key
    assert {r["step"] for r in rules.values()} == set(STEPS)


def test_every_step_is_a_cli_subcommand():
    from systpipe.cli import build_parser

    parser = build_parser()
    choices = next(a for a in parser._subparsers._group_actions).choices  # noqa: SLF001
    assert set(choices) == {"validate", *STEPS}


def test_schema_file_is_the_workflow_schema():
    workflow_schema = (
        Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
    )
    assert yaml.safe_load(workflow_schema.read_text()) == schema_file()
