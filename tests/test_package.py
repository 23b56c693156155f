"""The package's public API: every re-exported name resolves; the engine never imports Streamlit."""

import ast
import pathlib

import pytest

import xtmr_core


def test_every_exported_name_resolves():
    for name in xtmr_core.__all__:
        assert getattr(xtmr_core, name) is not None


def test_engine_has_no_streamlit_import():
    engine = pathlib.Path(xtmr_core.__file__).parent
    paths = sorted(engine.rglob("*.py"))
    assert engine / "report" / "__init__.py" in paths  # the walk reaches sub-packages
    for path in paths:
        text = path.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, path.relative_to(engine).as_posix()


ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xtmr_core"


def _modules() -> list[str]:
    """Every module of the package as the architecture page names it: ``x.py``, ``sub/`` and ``sub/y.py``."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if "__pycache__" in rel.parts:
            continue
        names.append(rel.as_posix())
        if rel.name == "__init__.py" and len(rel.parts) > 1:
            names[-1] = rel.parent.as_posix() + "/"
    return names


def test_architecture_page_names_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    missing = [name for name in _modules() if f"`{name}`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not name {', '.join(missing)}: add a row saying what each holds"


def _project_imports(path: pathlib.Path) -> set[str]:
    """The project modules (``app_state``, ``ui``, ``xtmr_core.x``) that a file imports, as dotted names."""
    local = {p.stem for p in ROOT.glob("*.py")} | {"xtmr_core", "pages", "app_views"}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in local}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in local:
            found.add(node.module)
    return found


#: What a page (or a part of one, in app_views/) may import of the project: the app's one caching seam, the
#: session's model choice, its UI helpers, the page parts, and the torch-free leaves (names and checks, the
#: campaign spec, the error type, the plan and format registries). Everything else goes through app_state.
PAGE_IMPORTS = {"app_state", "app_session", "ui", "xtmr_core.vocabulary", "xtmr_core.spec", "xtmr_core.errors"} | {
    "xtmr_core.plan_registry",  # what a plan is (label, budget, colour, reference images): torch-free
    "xtmr_core.format_registry",  # what a format is (bits, roles): torch-free
}
#: The page scripts and their parts, as paths under the repository root.
PAGE_SOURCES = sorted(
    p.relative_to(ROOT).as_posix() for folder in ("pages", "app_views") for p in (ROOT / folder).glob("*.py")
)
#: Pages that still reach past the seam (the live and pages helpers are moving these imports behind
#: app_state). Strict: a page that gets clean fails here until it leaves this list.
NOT_YET = {}
PAGES = [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=f"still imports {NOT_YET[name]}"))
    if name in NOT_YET
    else name
    for name in PAGE_SOURCES
]


@pytest.mark.parametrize("page", PAGES)
def test_pages_import_only_the_seam_the_ui_helpers_and_the_vocabulary(page):
    imports = _project_imports(ROOT / page)
    extra = {m for m in imports - PAGE_IMPORTS if m != "app_views" and not m.startswith("app_views.")}
    assert not extra, f"{page} imports {', '.join(sorted(extra))}: reach the engine through app_state"


#: The longest a function of a page or a page part may be, in lines (docstring included).
MAX_PAGE_FUNCTION_LINES = 60
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _outer_functions(tree: ast.AST) -> list[ast.AST]:
    """The functions (and lambdas) of a module that no other function encloses."""
    found: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCTIONS):
                found.append(child)
            else:
                visit(child)

    visit(tree)
    return found


def _long_functions(tree: ast.AST) -> list[str]:
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_PAGE_FUNCTION_LINES
    ]


@pytest.mark.parametrize("page", PAGE_SOURCES)
def test_no_page_function_is_longer_than_60_lines(page):
    long = _long_functions(ast.parse((ROOT / page).read_text()))
    assert not long, f"{page}: {', '.join(long)} over {MAX_PAGE_FUNCTION_LINES}: split into functions"


def _module_globals(tree: ast.Module) -> set[str]:
    """Names a page script binds at module level by assignment, loop, ``with ... as`` or ``:=`` (not imports or
    definitions)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (*_FUNCTIONS, ast.ClassDef)):
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            visit(child)

    visit(tree)
    return names


def _bound_inside(function: ast.AST) -> set[str]:
    """Every name a function (or any function inside it) binds: parameters, assignments, loop and comprehension
    variables, imports, nested definitions."""
    bound: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not function:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return bound


def _global_reads(tree: ast.Module) -> list[str]:
    page_globals = _module_globals(tree)
    reads = []
    for function in _outer_functions(tree):
        loaded = {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        for name in sorted((loaded & page_globals) - _bound_inside(function)):
            reads.append(f"{getattr(function, 'name', 'lambda')} (line {function.lineno}) reads {name}")
    return reads


@pytest.mark.parametrize("page", [p for p in PAGE_SOURCES if p.startswith("pages/")])
def test_no_page_function_reads_a_page_global(page):
    reads = _global_reads(ast.parse((ROOT / page).read_text()))
    assert not reads, f"{page}: " + "; ".join(reads) + ": pass it as an argument"


def _experiment_names(tree: ast.AST) -> set[str]:
    """Names bound to an ``Experiment``: ``exp = ...experiment(...)`` or ``choice, exp = ...require_experiment()``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_experiment_call(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Tuple) and len(target.elts) == 2 and isinstance(target.elts[1], ast.Name):
                    names.add(target.elts[1].id)
    return names


def _is_experiment_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("experiment", "require_experiment")


def _root(node: ast.AST) -> ast.AST:
    """What an attribute chain (``a.b[0].c``) hangs from."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _experiment_calls(tree: ast.AST) -> list[str]:
    names = _experiment_names(tree)
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root = _root(node.func)
            if _is_experiment_call(root) or (isinstance(root, ast.Name) and root.id in names):
                calls.append(f"line {node.lineno}: {ast.unparse(node.func)}(...)")
    return calls


@pytest.mark.parametrize("page", PAGE_SOURCES)
def test_pages_never_call_the_experiment(page):
    """Attribute reads (``exp.n_weights``) are fine; a call through the Experiment (``exp.clean_predictions()``,
    ``app_state.experiment(choice).scores(...)``, ``exp.layout.split(...)``) bypasses the caching seam."""
    calls = _experiment_calls(ast.parse((ROOT / page).read_text()))
    assert not calls, f"{page} calls the Experiment: {'; '.join(calls)}: add a cached call to app_state"


def test_the_torch_free_modules_type_check():
    mypy_api = pytest.importorskip("mypy.api")
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml")])
    assert status == 0, out + err


def test_the_lock_satisfies_the_declared_dependencies():
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {}
    for spec in project["dependencies"] + [d for ds in project["optional-dependencies"].values() for d in ds]:
        req = Requirement(spec)
        declared[req.name.lower()] = req
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    locked = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert {r.name.lower() for r in locked} == set(declared), "requirements.txt and pyproject.toml list other packages"
    for req in locked:
        pins = [s.version for s in req.specifier if s.operator == "=="]
        for version in pins:  # an exact pin must lie inside the declared range
            assert declared[req.name.lower()].specifier.contains(version), (req, declared[req.name.lower()])


#: A page that breaks each rule once, and keeps it where it may: the checks above must find exactly these.
_BAD_PAGE = """
import app_session, app_state
choice, exp = app_session.require_experiment()
spec = 1
n = exp.n_weights  # an attribute read: allowed


def reads_spec():
    return spec + n


def binds_its_own(spec):
    return [spec for spec in range(3)]


def calls_through():
    return exp.clean_predictions("fp32"), app_state.experiment(choice).layout.split([]), exp.x_test.shape


shown = sorted([1], key=lambda v: v * spec)
""" + "\n".join(["def long():"] + ["    x = 1"] * 60)


def test_the_page_checks_find_what_they_look_for():
    tree = ast.parse(_BAD_PAGE)
    assert _long_functions(tree) == ["long (61 lines)"]
    assert _global_reads(tree) == [
        "reads_spec (line 8) reads n",
        "reads_spec (line 8) reads spec",
        "calls_through (line 16) reads choice",
        "calls_through (line 16) reads exp",
        "lambda (line 20) reads spec",
    ]
    assert _experiment_calls(tree) == [
        "line 17: exp.clean_predictions(...)",
        "line 17: app_state.experiment(choice).layout.split(...)",
    ]
