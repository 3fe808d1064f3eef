"""The house rules the code keeps (docs/design.md, "Module map"): strategies are known
by their traits outside fedray/strategies/, privacy modes by their steps outside
fedray/privacy/, and no fedray module imports one that imports it back."""

import ast
import re
from pathlib import Path

import pytest

from fedray.privacy.modes import PrivacyMode
from fedray.strategies.traits import TRAITS

PACKAGE = Path(__file__).resolve().parent.parent / "fedray"


def _sources(outside: str):
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if not relative.startswith(outside):
            yield relative, path.read_text()


def _hits(pattern: re.Pattern, outside: str) -> list[str]:
    return [f"fedray/{name}:{number}: {line.strip()}"
            for name, text in _sources(outside)
            for number, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


STRATEGY_NAMES = "|".join(TRAITS)
STRATEGY_NAME_COMPARISON = re.compile(
    rf"strategy\.name\s*(==|!=|\bin\b|\bnot in\b)"
    rf"|(==|!=)\s*[\"']({STRATEGY_NAMES})[\"']|[\"']({STRATEGY_NAMES})[\"']\s*(==|!=)"
    r"|\w\[[\"'](local|pooled)[\"']\]")


def test_no_module_outside_strategies_compares_a_strategy_name():
    # config.py names its own options (pooled_scaling="pooled" is a scaling, not a strategy)
    hits = [h for h in _hits(STRATEGY_NAME_COMPARISON, "strategies/")
            if "pooled_scaling" not in h and "partition" not in h]
    assert hits == []


MODE_FLAGS = [name for name, value in vars(PrivacyMode).items()
              if isinstance(value, bool) or name in ("unit", "adjacency")]
PRIVACY_FLAG_READ = re.compile(
    r"\.(mechanism|" + "|".join(MODE_FLAGS) + r"|uniform_weight|self_sampling|"
    r"releases_every_round)\b|privacy\.enabled\b|privacy\.name\s*(==|!=|\bin\b)")


def test_the_mode_flags_are_read_only_inside_privacy():
    assert len(MODE_FLAGS) >= 7  # the pattern follows the flags PrivacyMode declares
    # config_rules.py and config.py are the config's own checks of the names it offers
    hits = [h for h in _hits(PRIVACY_FLAG_READ, "privacy/")
            if not h.startswith(("fedray/config.py", "fedray/config_rules.py"))]
    assert hits == []


def test_the_patterns_fire_on_what_they_forbid():
    # positive controls: the lines the refactor removed would be caught
    assert STRATEGY_NAME_COMPARISON.search('if config.strategy.name == "pooled":')
    assert STRATEGY_NAME_COMPARISON.search('self.strategy_state["local"] = trained')
    assert PRIVACY_FLAG_READ.search("if privacy.mechanism.per_hospital:")
    assert PRIVACY_FLAG_READ.search("if not privacy.enabled:")


def _module_imports() -> dict[str, set[str]]:
    """fedray module -> the fedray modules it imports, at module level or inside a
    function (a deferred import is still a dependency); TYPE_CHECKING blocks aside."""
    graph: dict[str, set[str]] = {}
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    for name, path in modules.items():
        edges = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for child in ast.walk(tree):
            if id(child) in typing_only:
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                edges.add(child.module)
                for alias in child.names:  # `from fedray.x import module`
                    edges.add(f"{child.module}.{alias.name}")
            elif isinstance(child, ast.Import):
                edges.update(a.name for a in child.names)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_no_import_circle_in_fedray():
    assert _cycle(_module_imports()) == []


def test_crypto_never_imports_privacy():
    # a fedray.privacy submodule runs fedray/privacy/__init__.py (the plan, the steps):
    # from crypto that made a circle that Ray workers hit when importing in parallel
    edges = [(m, e) for m, targets in _module_imports().items() if m.startswith("fedray.crypto")
             for e in targets if e.startswith("fedray.privacy")]
    assert edges == []


@pytest.mark.parametrize("graph, circle", [
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_circle_finder_finds_circles(graph, circle):
    assert _cycle(graph) == circle


def test_only_the_runtime_and_the_orchestrator_import_ray():
    importers = sorted(name for name, text in _sources("-")
                       if re.search(r"^\s*(import ray|from ray\b)", text, re.MULTILINE))
    assert importers and all(name.startswith(("runtime/", "orchestrator/"))
                             for name in importers), importers


def test_the_lazy_strategies_package_exports_what_it_lists():
    import fedray.strategies as strategies

    assert sorted(strategies.__all__) == sorted(strategies._HOMES)
    assert all(getattr(strategies, name) is not None for name in strategies.__all__)
