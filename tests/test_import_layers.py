"""The package's import structure: no medgan module imports another that (directly or through
others) imports it back — counting imports inside functions, which run later but still tie
the two modules together — and the shared layers never import upwards."""

import ast
from pathlib import Path

import medgan

ROOT = Path(medgan.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def medgan_imports(path: Path, top_level_only: bool = False) -> set[str]:
    """medgan modules named by the import statements of a module: at module level only, or
    anywhere in it (inside functions and methods too)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medgan"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("medgan"))
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the medgan modules it imports anywhere in its text. Importing ``a.b.c`` also
    runs ``a.b``'s ``__init__``; a submodule depends on its package's ``__init__``."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = {t for t in medgan_imports(path) if t in modules and t != name}
        packages = {".".join(t.split(".")[:k]) for t in targets for k in range(2, t.count(".") + 1)}
        edges[name] = (targets | packages) - {name}
        parent = name.rsplit(".", 1)[0]
        if parent != name and parent in modules:
            edges[name].add(parent)
    # a package's __init__ reaching into its own submodules (re-exports, lazy loaders) is the
    # package's public face, not a circle: leave those edges out
    for name in edges:
        edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """One line per strongly connected group of modules (Tarjan): its shortest circle through
    its first module (``a -> b -> ... -> a``), and the group's other modules."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    lines = []
    for group in groups:
        circle = _circle(group, edges)
        others = [m for m in group if m not in circle]
        lines.append(" -> ".join(circle) + (f" (with {', '.join(others)})" if others else ""))
    return lines


def _circle(group: list[str], edges: dict[str, set[str]]) -> list[str]:
    """The shortest circle through the group's first module (breadth-first)."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges[node] & members):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    return group


def test_the_check_sees_imports_inside_functions_and_names_the_circle(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from medgan.errors import MedganError\n\ndef f():\n    from medgan.runs import run_config\n")
    assert medgan_imports(module) >= {"medgan.errors", "medgan.runs"} and "medgan.runs" not in medgan_imports(module, True)
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"c"}, "e": {"a"}}
    assert cycles(edges) == ["a -> b -> c -> a (with d)"]


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(found)


def test_shared_layers_do_not_import_upwards():
    upper = {"io": {"data", "datasets", "nets", "train", "tasks", "metrics", "report", "infer", "runs", "evaluate", "cli"},
             "data": {"datasets", "nets", "train", "tasks", "metrics", "report", "infer", "runs", "evaluate", "cli"},
             "nets": {"datasets", "train", "tasks", "metrics", "report", "losses", "runs", "evaluate", "cli"},
             "metrics": {"train", "tasks", "report", "runs", "evaluate", "cli"},
             "infer": {"train", "tasks", "runs", "evaluate", "cli"}}
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        layer = name.split(".")[1] if "." in name else ""
        for target in medgan_imports(path):
            other = target.split(".")[1] if target.count(".") else ""
            assert other not in upper.get(layer, ()), f"{name} imports {target}"


def test_the_command_line_parser_imports_no_torch_and_no_readers():
    """``medgan --help`` / ``--version`` start in well under a second: building the whole
    parser (every task's flags and commands) imports neither torch nor pydicom/nibabel."""
    import subprocess
    import sys

    code = ("import sys; from medgan.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'pydicom', 'nibabel', 'matplotlib', 'monai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"building the parser imported {out}"
