"""The seams between the apps, read from the source: every import in every module of
`missions`, `decisions`, `observations` and `integrations`, function-local ones included,
parsed with `ast`.

What each app may import of another (anything else fails here, a pair not listed included):

- missions -> decisions: `decisions.waits` only: open, outcome, expire and withdraw a decision,
  and the subquery the scheduler uses to find a missed wake-up. The engine and the mission
  services need nothing else of decisions.
- decisions -> missions: `missions.waits`: wake a waiting mission and take its row lock
  (the lock order is written down in both `waits` modules); and `missions.search`: a decision
  is found, listed and exported by its mission's business keys. Decisions read their mission
  through the `decision.mission` relation, which needs no import.
- missions -> observations: `observations.services` (write a rail line), `observations.models`,
  `observations.selectors`, `observations.timeline` (read the rail for mission pages) and
  `observations.templatetags.rail` (the admin shows durations and JSON as the rail does).
- observations -> missions: `missions.models` and `missions.selectors` (read-only: which
  missions a user may watch), and `missions.retention` (the purge task Celery finds in
  `observations.tasks`).
- decisions -> observations: `observations.services` (deciding writes a rail line) and
  `observations.models` (the decision's page shows its mission's rail).
- missions -> integrations: `integrations.mcp_client` (`ctx.call_tool`) and `integrations.llm`
  (`ctx.llm`), nothing else.
- integrations -> missions: `missions.models` (the MCP servers configured in the admin).

The project's shell (`studiox`: settings, the Celery app, pages' helpers) and the showcases
are not apps with a seam here, but the last rule holds for every package of the project: an
import from another package sits at the top of its module, where the next reader sees it; a
function-local import hides a dependency (and usually an import cycle).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("missions", "decisions"): frozenset({"decisions.waits"}),
    ("decisions", "missions"): frozenset({"missions.search", "missions.waits"}),
    ("missions", "observations"): frozenset(
        {
            "observations.models",
            "observations.selectors",
            "observations.services",
            "observations.templatetags.rail",
            "observations.timeline",
        }
    ),
    ("observations", "missions"): frozenset(
        {"missions.models", "missions.retention", "missions.selectors"}
    ),
    ("decisions", "observations"): frozenset({"observations.models", "observations.services"}),
    ("missions", "integrations"): frozenset({"integrations.llm", "integrations.mcp_client"}),
    ("integrations", "missions"): frozenset({"missions.models"}),
    # Recurring missions: start one (mission_start) and read the declared schedules.
    ("schedules", "missions"): frozenset({"missions.runtime", "missions.services"}),
}
APPS = sorted({app for pair in ALLOWED for app in pair})
PROJECT_PACKAGES = (
    "decisions",
    "integrations",
    "knowledge",
    "missions",
    "observations",
    "schedules",
    "showcases",
    "studiox",
)


@dataclass(frozen=True)
class CrossImport:
    source: str  # path relative to the repository
    line: int
    target: str  # the imported module, dotted
    top_level: bool

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted modules an import statement reaches; `from a import b` counts as `a.b`
    when `a` is an app's package (b is then a module of it), else as `a`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    if base in PROJECT_PACKAGES:
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def _cross_imports(app: str) -> list[CrossImport]:
    """Imports in `app` of another package of the project."""
    found = []
    for path in sorted((ROOT / app).rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(node, module, path.name == "__init__.py"):
                if target.split(".")[0] in PROJECT_PACKAGES and target.split(".")[0] != app:
                    source = str(path.relative_to(ROOT))
                    found.append(CrossImport(source, node.lineno, target, id(node) in top_level))
    return found


def _outside_the_seam(source_app: str, target_app: str) -> list[str]:
    allowed = ALLOWED.get((source_app, target_app), frozenset())
    return [
        str(found)
        for found in _cross_imports(source_app)
        if found.target.split(".")[0] == target_app and found.target not in allowed
    ]


@pytest.mark.parametrize(
    ("source_app", "target_app"),
    [(source, target) for source in APPS for target in APPS if source != target],
)
def test_an_app_reaches_another_only_through_its_seam(source_app, target_app):
    assert _outside_the_seam(source_app, target_app) == []


@pytest.mark.parametrize("package", PROJECT_PACKAGES)
def test_imports_between_packages_of_the_project_sit_at_the_top_of_the_module(package):
    hidden = [str(found) for found in _cross_imports(package) if not found.top_level]
    assert hidden == []


def test_the_decisions_side_of_the_seam_imports_nothing_from_missions():
    """decisions.waits is what the engine imports, so it must not import missions back."""
    assert [
        str(found)
        for found in _cross_imports("decisions")
        if found.source.endswith("decisions/waits.py")
    ] == []


IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _caught(handler: ast.ExceptHandler) -> set[str]:
    if handler.type is None:
        return set()
    return {item.id for item in ast.walk(handler.type) if isinstance(item, ast.Name)}


def _probes_for_a_module(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "find_spec") or (
        isinstance(node, ast.Attribute) and node.attr == "find_spec"
    )


def _optional_imports(package: str) -> list[str]:
    """Places that carry on without a module: `except ImportError` or a `find_spec` probe."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        source = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ExceptHandler) and _caught(node) & IMPORT_ERRORS:
                found.append(f"{source}:{node.lineno} catches {sorted(_caught(node))}")
            elif _probes_for_a_module(node):
                found.append(f"{source}:{node.lineno} probes with find_spec")
    return found


@pytest.mark.parametrize("package", PROJECT_PACKAGES)
def test_a_missing_module_of_the_project_fails_at_start_up(package):
    """Every module of the project is in the repository: code that carries on without one
    would hide a broken deploy until someone notices a page or a route is gone."""
    assert _optional_imports(package) == []


def test_the_reader_sees_a_violation_where_it_is(tmp_path, monkeypatch):
    """The parser finds a function-local import that reaches past the seam."""
    app = tmp_path / "missions"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "sneaky.py").write_text(
        "from integrations import llm\n\n"
        "def go():\n    from decisions import services\n    from . import waits\n"
        "    from integrations import mcp_client\n    import studiox.celery\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    found = _cross_imports("missions")
    assert [(str(item), item.top_level) for item in found] == [
        ("missions/sneaky.py:1 imports integrations.llm", True),
        ("missions/sneaky.py:4 imports decisions.services", False),
        ("missions/sneaky.py:6 imports integrations.mcp_client", False),
        ("missions/sneaky.py:7 imports studiox.celery", False),
    ]
