"""The house: every import of the code goes through the `vjepa_wm` root and only where DESIGN.md's
table of rooms allows (no room reaches backwards or sideways; nothing below the top floor imports it)."""
from __future__ import annotations

import ast

from helpers import ROOT

# room -> rooms it may import (DESIGN.md); the top floor, vjepa_wm/, may import every room.
ALLOWED = {
    "embodiments": set(),
    "world_model": {"embodiments"},
    "datasets": {"embodiments"},
    "planner": {"world_model", "embodiments"},
    "sim": {"datasets", "embodiments"},
    "ros_nodes": {"planner", "world_model", "sim", "embodiments"},
}
ROOMS = set(ALLOWED)


def imports(path):
    """(line, module) of every absolute import in a file, and the names of import-by-string calls."""
    tree = ast.parse(path.read_text())
    found, strings = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "vjepa_wm"]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            strings.append(node.lineno)
    return found, strings


def source_files():
    for room in [*ROOMS, "vjepa_wm"]:
        yield from ((room, path) for path in sorted((ROOT / room).rglob("*.py")))


def test_no_import_goes_against_the_table_of_rooms():
    bad = []
    for room, path in source_files():
        found, strings = imports(path)
        where = path.relative_to(ROOT)
        bad += [f"{where}:{line} imports a module by a string" for line in strings]
        for line, module in found:
            parts = module.split(".")
            if parts[0] in ROOMS or parts[0] in ("benchmarks", "configs"):
                bad.append(f"{where}:{line} imports {module} outside the vjepa_wm root")
            elif parts[0] == "vjepa_wm" and room != "vjepa_wm":
                target = parts[1] if len(parts) > 1 and parts[1] in ROOMS else "vjepa_wm (the top floor)"
                if target != room and target not in ALLOWED[room]:
                    bad.append(f"{where}:{line} {room} -> {target} ({module})")
    assert not bad, "\n".join(bad)


def test_the_tests_use_the_import_root_too():
    bad = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for line, module in imports(path)[0]:
            if module.split(".")[0] in ROOMS | {"benchmarks"}:
                bad.append(f"{path.name}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_every_room_folder_is_a_package_of_the_root():
    for room in ROOMS:
        assert (ROOT / room / "__init__.py").is_file(), room
        for folder in (ROOT / room).rglob("*"):
            if folder.is_dir() and folder.name != "__pycache__" and any(folder.glob("*.py")):
                assert (folder / "__init__.py").is_file(), folder
