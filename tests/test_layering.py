"""Imports point one way: web -> services|maps|tiles -> analysis|models -> db."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gridmap"

FORBIDDEN = {
    "analysis": ("flask", "sqlalchemy", "geoalchemy2", "gridmap.web", "gridmap.services", "gridmap.models",
                 "gridmap.db", "gridmap.maps"),
    "maps": ("flask", "sqlalchemy", "geoalchemy2", "gridmap.web", "gridmap.services", "gridmap.db",
             "gridmap.models"),
    "models": ("flask", "gridmap.web", "gridmap.services", "gridmap.maps"),
    "services": ("flask", "gridmap.web", "gridmap.tiles"),
    "tiles": ("flask", "gridmap.web", "gridmap.services", "gridmap.maps"),
    "demo": ("flask", "sqlalchemy", "gridmap.web", "gridmap.services", "gridmap.db"),
}


def imported_modules(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_imports_point_one_way():
    problems = []
    for sub, banned in FORBIDDEN.items():
        for path in (PACKAGE / sub).rglob("*.py"):
            for module in imported_modules(path):
                if any(module == b or module.startswith(b + ".") for b in banned):
                    problems.append(f"{path.relative_to(PACKAGE)} imports {module}")
    for path in PACKAGE.rglob("*.py"):
        if "web" in path.relative_to(PACKAGE).parts or path == PACKAGE / "__init__.py":
            continue
        for module in imported_modules(path):
            if module.startswith("gridmap.web"):
                problems.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert problems == []
