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


def test_readme_layout_names_every_folder_and_module():
    """README's Layout block lists each tracked top-level folder and each module of the package."""
    text = (ROOT / "README.md").read_text()
    layout = re.search(r"## Layout\n\n```\n(.+?)\n```", text, re.S).group(1)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    folders = {f.split("/")[0] + "/" for f in files if "/" in f and not f.startswith(".")}
    modules = {Path(f).name for f in files
               if re.fullmatch(r"uld_explorer/(\w+/)?[a-z]\w*\.py", f) and not f.startswith("uld_explorer/app/")}
    named = set(re.findall(r"[\w./]+", layout))
    assert folders - named == set(), "README Layout misses these folders"
    assert {m for m in modules if m not in named} == set(), "README Layout misses these modules"
