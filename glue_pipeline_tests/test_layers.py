"""The package's layers, read from its source with `ast`: only the store speaks SQL (SQLAlchemy,
Alembic), and the plan loads neither SQL nor Dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import glue_pipeline

PACKAGE = Path(glue_pipeline.__file__).parent
SQL_LIBRARIES = ("sqlalchemy", "alembic")
# The store owns all SQL; the sandbox is a separate test server with its own.
SQL_OWNERS = ("store", "sandbox")


def _imports(path: Path) -> list[tuple[str, str]]:
    """Each module a file imports, anywhere in it (functions and TYPE_CHECKING blocks too), with
    the import as `file:line: statement`; relative imports are resolved to the full name."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            names = [".".join([*base, node.module] if node.module else base)]
        else:
            continue
        where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}"
        found += [(name, where) for name in names]
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_only_the_store_imports_sqlalchemy_or_alembic() -> None:
    owned, offending = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        owner = path.relative_to(PACKAGE).parts[0] in SQL_OWNERS
        for module, where in _imports(path):
            if _top(module) in SQL_LIBRARIES:
                (owned if owner else offending).append(where)
    assert owned, "no store module imports SQLAlchemy: the walk found nothing, so it checks nothing"
    assert not offending, ("only glue_pipeline/store/ (and the sandbox) may import SQLAlchemy or Alembic; "
                           "use the store's functions and names instead:\n" + "\n".join(offending))


def test_the_plan_imports_neither_sql_nor_dagster() -> None:
    offending = [where for module, where in _imports(PACKAGE / "plan.py")
                 if _top(module) in SQL_LIBRARIES or _top(module) == "dagster"
                 or _top(module).startswith("dagster_")]
    assert not offending, "glue_pipeline/plan.py imports SQL or Dagster:\n" + "\n".join(offending)


def test_the_plan_and_matching_load_neither_sql_nor_dagster_at_all() -> None:
    """Not even through the modules they import (the options among them): planning and matching
    run without a database library or Dagster (a fresh interpreter, so other tests' imports do
    not count)."""
    probe = ("import sys, glue_pipeline.plan, glue_pipeline.matching.duplicates, glue_pipeline.matching.suggest; "
             "print(sorted({m.split('.')[0] for m in sys.modules "
             "if m.split('.')[0] in ('sqlalchemy', 'alembic') or m.startswith('dagster')}))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"importing the plan loads SQL libraries or Dagster: {loaded.strip()[:300]}"
