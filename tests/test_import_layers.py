"""The package's import structure: no module imports another that (directly or through
others) imports it back at import time, and the shared layers never import upwards."""

import ast
from pathlib import Path

import medgan

ROOT = Path(medgan.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """medgan modules imported by statements at module level (not inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medgan"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("medgan"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = {t for t in top_level_imports(path) if t in modules and t != name}
        # importing a.b.c runs a/__init__ and a/b/__init__ first
        edges[name] = targets | {".".join(t.split(".")[:k]) for t in targets for k in range(2, t.count(".") + 1)} - {name}
        parent = name.rsplit(".", 1)[0]
        if parent != name and parent in modules and not name.endswith("__init__"):
            edges[name].add(parent)
    return edges


def test_no_import_cycles():
    edges = graph()
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    # a package importing its own submodules in __init__ is not a cycle
    real = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") or c[0].startswith(m + ".") for m in c)]
    assert not real, real[:3]


def test_shared_layers_do_not_import_upwards():
    upper = {"io": {"data", "datasets", "nets", "train", "tasks", "metrics", "report", "infer", "evaluate", "cli"},
             "data": {"datasets", "nets", "train", "tasks", "metrics", "report", "infer", "evaluate", "cli"},
             "nets": {"datasets", "train", "tasks", "metrics", "report", "losses", "evaluate", "cli"},
             "metrics": {"train", "tasks", "report", "evaluate", "cli"},
             "infer": {"train", "tasks", "evaluate", "cli"}}
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        layer = name.split(".")[1] if "." in name else ""
        for target in top_level_imports(path):
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
