"""Repository hygiene: README commands, CI, app binding, no machine paths or registry hosts."""

import re
import subprocess
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", text)


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    app_cmd, test_cmd = commands[0], commands[1]
    assert "torch==2.13.0" in app_cmd and app_cmd.endswith("streamlit run app.py")
    assert "torch==2.13.0" in test_cmd and "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), "the test command in .ci/run must be README's, verbatim"
    assert "exit 1" in ci and '"$status" -eq 5' in ci  # no-test run fails


def test_streamlit_binds_to_loopback():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["headless"] is True
    assert cfg["browser"]["gatherUsageStats"] is False


def test_no_machine_paths_or_registry_hosts_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    forbidden = ["/" + "work/", "/" + "root/", "/" + "home/", "pypi" + ".org", "pythonhosted" + ".org", "/opt/" + "pypi"]
    hits = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".ipynb"}:
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{name}: {f}" for f in forbidden if f in text]
    assert not hits, hits


def test_the_library_never_imports_streamlit():
    """Only the app package (uld_explorer/app) talks to Streamlit; the library does not."""
    offenders = []
    for path in (ROOT / "uld_explorer").rglob("*.py"):
        if "app" in path.relative_to(ROOT / "uld_explorer").parts[:1]:
            continue
        text = path.read_text()
        if re.search(r"^\s*(import streamlit|from streamlit)", text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_the_layout_page_names_every_folder_and_module():
    """The guide's Layout page (docs/guide/layout.md) lists each tracked top-level folder and each
    module of the package."""
    text = (ROOT / "docs" / "guide" / "layout.md").read_text()
    layout = re.search(r"# Layout\n\n```\n(.+?)\n```", text, re.S).group(1)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    folders = {f.split("/")[0] + "/" for f in files if "/" in f and not f.startswith(".")}
    modules = {Path(f).name for f in files
               if re.fullmatch(r"uld_explorer/(\w+/)?[a-z]\w*\.py", f) and not f.startswith("uld_explorer/app/")}
    named = set(re.findall(r"[\w./]+", layout))
    assert folders - named == set(), "docs/guide/layout.md misses these folders"
    assert {m for m in modules if m not in named} == set(), "docs/guide/layout.md misses these modules"


def _python_files() -> list[Path]:
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / f for f in files if (ROOT / f).is_file()]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_crosses_a_module():
    """Nothing reaches into another module of the project for a private name: neither
    ``from uld_explorer.x import _y`` (or a relative ``from .x import _y``) nor ``x._y`` on a
    project module imported by name. What is shared gets a public name in the module that owns it."""
    import ast

    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        project_modules: set[str] = set()  # names bound to project modules in this file
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                ours = node.level > 0 or (node.module or "").split(".")[0] == "uld_explorer"
                if not ours:
                    continue
                for alias in node.names:
                    if _private(alias.name):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}")
                    project_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "uld_explorer":
                        project_modules.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in project_modules):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not offenders, offenders


def test_library_files_stay_short_or_say_their_one_job():
    """No library module over ~600 lines unless it is one job and its docstring says which."""
    import ast

    long = []
    for path in (ROOT / "uld_explorer").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 620:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "One job:" not in doc:
                long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, long


#: docs/architecture.md's layers: a unit imports only from units of a lower layer (or its own).
LAYERS = {
    1: {"checks", "costs", "errors", "jsonsafe", "memory", "_lazy"},
    2: {"distributions", "hybrid", "synthetic", "text"},
    3: {"divergences", "ot", "zoo"},
    4: {"measures", "lens"},
    5: {"summary", "compare", "tidy", "lesson"},
    6: {"distill"},
    7: {"audit"},
    8: {"plots", "charts"},
    9: {"app"},
    10: {"cli"},
}


def test_the_layers_only_import_downwards():
    """Every import between the package's units (modules and subpackages) runs down the layers of
    docs/architecture.md (function-level imports included): nothing imports back up."""
    import ast

    layer_of = {unit: n for n, units in LAYERS.items() for unit in units}
    package = ROOT / "uld_explorer"
    upward = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).with_suffix("").parts
        if rel == ("__init__",) or rel == ("_version",):
            continue
        unit = rel[0]
        assert unit in layer_of, f"{unit} is in no layer of docs/architecture.md"
        dotted = ["uld_explorer", *rel[:-1]] + ([] if rel[-1] == "__init__" else [rel[-1]])
        pkg = dotted if rel[-1] == "__init__" else dotted[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = pkg[: len(pkg) - node.level + 1] if node.level else []
                module = (node.module or "").split(".") if node.module else []
                full = (base + module) if node.level else module
                targets = [full] + [full + [a.name] for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".") for a in node.names]
            for t in targets:
                if len(t) >= 2 and t[0] == "uld_explorer" and t[1] in layer_of and t[1] != unit:
                    if layer_of[t[1]] > layer_of[unit]:
                        upward.append(f"{path.relative_to(ROOT)}:{node.lineno} ({unit}, layer {layer_of[unit]}) "
                                      f"imports {t[1]} (layer {layer_of[t[1]]})")
    assert not upward, upward


def test_every_python_file_compiles_without_a_syntax_warning():
    """An invalid escape in a docstring (``\\log`` written as ``\\l`` in a non-raw string) is a
    SyntaxWarning today and an error later, and a valid one (``\\b`` in ``\\beta``) silently becomes
    another character: every tracked Python file compiles with SyntaxWarning as an error."""
    import warnings

    files = [p for folder in ("uld_explorer", "tests", "benchmarks", "tools") for p in (ROOT / folder).rglob("*.py")]
    files.append(ROOT / "app.py")
    bad = []
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SyntaxWarning)
            try:
                compile(path.read_text(encoding="utf-8"), str(path), "exec")
            except SyntaxError as err:  # a SyntaxWarning raised as an error surfaces as SyntaxError
                bad.append(f"{path.relative_to(ROOT)}:{err.lineno}: {err.msg}")
    assert len(files) > 50 and not bad, bad


def test_no_test_module_changes_torch_threads_for_the_whole_session():
    """A module-level ``torch.set_num_threads`` runs at collection and holds for every test after
    it: the suite then runs on one thread, and forward passes that tests compare bit for bit with
    a cache or a server (built with the default threads) differ in the last bits. Set it inside a
    fixture that restores it."""
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "tests").glob("*.py")
           for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
           if line.startswith("torch.set_num_threads(")]
    assert not bad, bad
