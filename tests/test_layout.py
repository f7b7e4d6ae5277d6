"""The layout of the package, checked from its source (issue 15): no import cycle, no private name taken from
another module (except between the modules of one task's package), no long module that does not say why it is
long, no switch on a task's name outside its package.

Each check reads the source with `ast` and imports nothing of it, so that it is quick and sees every import, also
those inside functions (a lazy import still ties two modules together: it only moves the moment it fails).

What the branches of issue 15 are removing is listed in `KNOWN_*`, one entry per offender with its reason. Each
entry is a strict expected failure: once the offence is gone its test passes, which fails the run, and the entry
is deleted. A new offence not listed fails `test_no_new_*` with its name.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "shopfloor"
PACKAGE = "shopfloor"
LONGEST = 400  # lines; a longer module says why in a docstring line starting "Length:"

# -- what the other branches of issue 15 remove (delete an entry when its test passes) --------------------------
KNOWN_CYCLES: dict[frozenset[str], str] = {
}
KNOWN_PRIVATE_IMPORTS: dict[str, str] = {
}
KNOWN_LONG_MODULES: dict[str, str] = {
}
KNOWN_TASK_SWITCHES: dict[str, str] = {
}
# Modules that name tasks by design, not to choose what a model does: they are never an offence.
ALLOWED_TASK_SWITCHES: dict[str, str] = {
    "demo": "the demo trains one model of each task and names its figures after them: it chooses the tasks",
}


# -- reading the source ---------------------------------------------------------------------------------------
@cache
def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by the name of its folder)."""
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(SOURCE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def absolute(name: str, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with relative imports resolved against `name`'s package."""
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package(name) else name.split(".")[:-1]
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def runtime_imports(module: ast.Module):
    """Every import statement that can run: at module level or in a function, but not under `if TYPE_CHECKING:`
    (those are read by type checkers only and never executed)."""
    skipped: set[int] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for inner in node.body for child in ast.walk(inner))
    for node in ast.walk(module):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped:
            yield node


def imported(name: str, source: ast.Module | None = None) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import of a shopfloor module by module `name`: `from
    shopfloor.x import y` is module `shopfloor.x.y` when that is a module, else the name y of `shopfloor.x`."""
    out = []
    for node in runtime_imports(source or tree(name)):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == PACKAGE]
            continue
        base = absolute(name, node)
        if base.split(".")[0] != PACKAGE:
            continue
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            out.append((submodule, None) if submodule in modules() else (base, alias.name))
    return out


@cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the shopfloor modules it imports, with the packages whose `__init__` the import runs first.

    One edge is left out: a package's `__init__` importing its own submodules. Python runs the `__init__` first
    and the submodules' imports of the package then find it already in `sys.modules`; a package that gathers
    its public names from its submodules is the package's front door, not two modules that need each other.
    """
    graph = {}
    for name in modules():
        targets = set()
        for module, _ in imported(name):
            parts = module.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        graph[name] = {t for t in targets & modules().keys()
                       if t != name and not (is_package(name) and t.startswith(name + "."))}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components: every set of modules in which each reaches each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


@cache
def cycles() -> list[frozenset[str]]:
    graph = import_graph()
    return [frozenset(c) for c in strongly_connected(graph)
            if len(c) > 1 or any(m in graph.get(m, ()) for m in c)]


def short(name: str) -> str:
    return name.removeprefix(PACKAGE + ".")


# -- (a) no import cycle --------------------------------------------------------------------------------------
def test_tarjan_finds_each_circle_once_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    found = sorted(sorted(c) for c in strongly_connected(graph) if len(c) > 1)
    assert found == [["a", "b", "c"], ["d", "e"]]


def test_imports_resolve_to_modules_also_inside_functions_but_not_for_type_checkers():
    source = ast.parse("from typing import TYPE_CHECKING\nfrom shopfloor.data import tables\n"
                       "from shopfloor import __version__\nfrom . import errors\nimport shopfloor.tasks.base as base\n"
                       "if TYPE_CHECKING:\n    from shopfloor.store import Store\n"
                       "def later():\n    from shopfloor.errors import warn\n")
    assert imported("shopfloor.registry", source) == [
        ("shopfloor.data.tables", None), ("shopfloor", "__version__"), ("shopfloor.errors", None),
        ("shopfloor.tasks.base", None), ("shopfloor.errors", "warn")]


def test_the_graph_holds_lazy_imports_and_the_packages_an_import_runs():
    graph = import_graph()
    assert "shopfloor.errors" in graph["shopfloor.data.tables"]  # from shopfloor.errors import DataFileError
    assert "shopfloor.tasks.base" in graph["shopfloor.registry"]  # imported inside Registry.load
    assert "shopfloor.tasks" in graph["shopfloor.registry"]  # which runs shopfloor/tasks/__init__.py first


def test_no_new_import_cycle():
    new = [c for c in cycles() if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(sorted(map(short, c))) for c in new)


@pytest.mark.parametrize("cycle", [pytest.param(c, id=" <-> ".join(sorted(map(short, c))), marks=pytest.mark.xfail(
    strict=True, reason=reason)) for c, reason in KNOWN_CYCLES.items()])
def test_known_import_cycle_is_gone(cycle):
    assert not any(len(cycle & found) > 1 for found in cycles())


# -- (b) no private name imported from above the tasks -----------------------------------------------------------
@cache
def own_package(name: str) -> str | None:
    """The task package a module belongs to (`shopfloor.tasks.rul` for `shopfloor.tasks.rul.report`), or None."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[:2] == [PACKAGE, "tasks"] and len(parts) > 3 else None


def private_imports() -> dict[str, str]:
    """'importer: module._name, ...' -> importer, for the private names of other shopfloor modules that a module
    imports (`from shopfloor.x import _y`) or reaches through a module it imported (`x._y` after `from shopfloor
    import x`). A task's package is one whole: its modules may share private names among themselves, never with
    another task's package or with a module outside it."""
    found: dict[str, set[str]] = {}
    for name in modules():
        package = own_package(name)
        bound = {}  # a local name -> the shopfloor module bound to it
        for node in runtime_imports(tree(name)):
            for alias in node.names:
                if isinstance(node, ast.Import):
                    if alias.asname and alias.name.split(".")[0] == PACKAGE:
                        bound[alias.asname] = alias.name
                elif f"{absolute(name, node)}.{alias.name}" in modules():
                    bound[alias.asname or alias.name] = f"{absolute(name, node)}.{alias.name}"
        reached = [(module, item) for module, item in imported(name) if item is not None]
        reached += [(bound[node.value.id], node.attr) for node in ast.walk(tree(name))
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound]
        private = {f"{short(module)}.{item}" for module, item in reached if is_private(item) and module != name
                   and not (package and own_package(module) == package)}
        if private:
            found[short(name)] = private
    return {f"{importer}: {', '.join(sorted(names))}": importer for importer, names in found.items()}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_new_private_import():
    new = sorted(offence for offence, importer in private_imports().items() if importer not in KNOWN_PRIVATE_IMPORTS)
    assert not new, "private names imported from another module (make them public or move them):\n" + "\n".join(new)


@pytest.mark.parametrize("importer", [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=reason))
                                      for m, reason in KNOWN_PRIVATE_IMPORTS.items()])
def test_known_private_import_is_gone(importer):
    assert importer not in private_imports().values()


# -- (c) a long module says why it is better whole -------------------------------------------------------------
@cache
def long_modules() -> list[str]:
    out = []
    for name, path in modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        docstring = ast.get_docstring(tree(name)) or ""
        says_why = any(line.strip().startswith("Length:") for line in docstring.splitlines())
        if len(lines) > LONGEST and not says_why:
            out.append(f"{short(name)} ({len(lines)} lines)")
    return out


def test_no_new_long_module_without_a_reason():
    new = sorted(m for m in long_modules() if m.split(" ")[0] not in KNOWN_LONG_MODULES)
    assert not new, (f"modules over {LONGEST} lines whose docstring has no 'Length:' line saying why whole is "
                     "better (or split them):\n" + "\n".join(new))


@pytest.mark.parametrize("module", [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=reason))
                                    for m, reason in KNOWN_LONG_MODULES.items()])
def test_known_long_module_is_split_or_says_why(module):
    assert module not in [m.split(" ")[0] for m in long_modules()]


# -- (d) no switch on a task's name outside its package ----------------------------------------------------------
@cache
def task_names() -> frozenset[str]:
    """The names in the registry `TASKS` of shopfloor/tasks/__init__.py, read from its source."""
    for node in ast.walk(tree(f"{PACKAGE}.tasks")):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "TASKS":
            return frozenset(ast.literal_eval(node.value))
    raise AssertionError("shopfloor/tasks/__init__.py has no TASKS registry")


def names_in(node: ast.AST) -> set[str]:
    """The task names among the string literals of an expression (a literal, or a tuple/list/set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} & task_names()
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*(names_in(e) for e in node.elts)) if node.elts else set()
    return set()


def switched_names(node: ast.AST) -> set[str]:
    """Task names that an expression chooses by.

    A comparison counts when the other side is about a task (its source says `task`: `task_name == "rul"`,
    `manifest["task"] in ("defects", "anomaly")`), so that the column and the alarm kind called "rul" do not; a
    table counts when two or more of its keys are task names (`{"tabular": ..., "rul": ...}`, a dict per task),
    so that a row with a "rul" value does not; so does a group of two or more task names (`STREAM_TASKS =
    ("tabular", "rul")`, compared later through its name); a `match` counts when a case is a task name.
    """
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        found = set()
        for i, side in enumerate(sides):
            others = sides[:i] + sides[i + 1:]
            if names_in(side) and any("task" in ast.unparse(o).lower() for o in others):
                found |= names_in(side)
        return found
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return names_in(node) if len(names_in(node)) > 1 else set()
    if isinstance(node, ast.Dict):
        keys = set().union(*(names_in(k) for k in node.keys if k is not None)) if node.keys else set()
        return keys if len(keys) > 1 else set()
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
        keys = {k.arg for k in node.keywords} & task_names()
        return keys if len(keys) > 1 else set()
    if isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue):
        return names_in(node.pattern.value)
    return set()


@cache
def task_switches() -> dict[str, str]:
    """'module:line names' -> module for every switch on a task's name outside that task's package (the registry
    in shopfloor/tasks/__init__.py is where the names are given, so it is not searched)."""
    found = {}
    for name in modules():
        if name == f"{PACKAGE}.tasks" or short(name).split(".")[0] in ALLOWED_TASK_SWITCHES:
            continue
        own = name.split(".")[2] if name.startswith(f"{PACKAGE}.tasks.") and name.count(".") >= 3 else None
        for node in ast.walk(tree(name)):
            names = switched_names(node) - {own}
            if names:
                found[f"{short(name)}:{node.lineno if hasattr(node, 'lineno') else node.pattern.lineno} "
                      f"{', '.join(sorted(names))}"] = short(name)
    return found


def test_the_switch_finder_sees_switches_and_not_columns():
    code = ast.parse('if task_name == "rul": pass\nif manifest["task"] in ("defects", "anomaly"): pass\n'
                     'PAGES = {"tabular": 1, "rul": 2}\nrow = {"risk": 0.1, "rul": 12.0}\nif kind == "rul": pass\n'
                     'IMAGES = ("defects", "anomaly")\ncolumns = ["risk", "rul", "rul_low"]\n')
    found = [sorted(switched_names(node)) for node in ast.walk(code) if switched_names(node)]
    assert found == [["rul"], ["anomaly", "defects"], ["rul", "tabular"], ["anomaly", "defects"],
                     ["anomaly", "defects"]]  # the tuple of a comparison is a group of its own: one place, one line


def test_no_new_switch_on_a_task_name():
    new = sorted(place for place, module in task_switches().items() if module not in KNOWN_TASK_SWITCHES)
    assert not new, ("switches on a task's name outside its package (ask the estimator instead):\n" + "\n".join(new))


@pytest.mark.parametrize("module", [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=reason))
                                    for m, reason in KNOWN_TASK_SWITCHES.items()])
def test_known_switch_on_a_task_name_is_gone(module):
    places = [place for place, m in task_switches().items() if m == module]
    assert not places, "\n".join(places)


# -- every name a module imports from another exists there ------------------------------------------------------
def missing_names() -> list[str]:
    """`module: from x import y` for each import of a shopfloor name that x does not define.

    A lazy import (inside a function) of a name that moved fails only when that function runs, which a test may
    never do: the demo's `from shopfloor.artifacts import LITE0_PACKAGE` outlived the constant's move. The names a
    module defines are read from its source: its top-level assignments, functions, classes and imports."""
    defined: dict[str, set[str]] = {}
    for name in modules():
        names = set()
        for node in tree(name).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
            elif isinstance(node, (ast.If, ast.Try)):  # names defined under a guard count too
                names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(node)
                          if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        if "__getattr__" in names:  # a module that makes names on demand (the package's lazy estimators)
            names.add("*")
        defined[name] = names
    missing = []
    for name in modules():
        for module, attribute in imported(name):
            if attribute is not None and module in defined and "*" not in defined[module] \
                    and attribute not in defined[module]:
                missing.append(f"{short(name)}: from {short(module)} import {attribute}")
    return sorted(set(missing))


def test_every_imported_name_exists_where_it_is_imported_from():
    assert missing_names() == []
