"""The shipped documentation: its examples run, it names every registered part, it stays inside the repo."""

import re
import subprocess
from pathlib import Path

import pytest

from bbopt.optimizer import OPTIMIZERS
from bbopt.problems import PROBLEMS

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
OUTSIDE = "../" + "shared"  # spelled in two parts so that this file does not name it
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(page: Path) -> list[str]:
    return PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    """Every ```python block of a page runs, in order, in one namespace (like the README's)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs.{page.stem}"}
    for k, block in enumerate(_blocks(page)):
        exec(compile(block, f"{page.name} (python block {k + 1})", "exec"), namespace)


def _documented_names() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES)
    return set(re.findall(r"`([^`\n]+)`", text))


@pytest.mark.parametrize("kind, names", [("optimizer", sorted(OPTIMIZERS)), ("problem", sorted(PROBLEMS))])
def test_every_registered_name_is_documented(kind, names):
    documented = _documented_names()
    missing = [name for name in names if name not in documented]
    assert not missing, f"registered {kind}s named in no docs/*.md page (in backticks): {missing}"


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout (lists the tracked files)")
def test_no_tracked_file_refers_outside_the_repository():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    offenders = []
    for name in filter(None, files.decode().split("\0")):
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            try:
                if OUTSIDE in path.read_text(encoding="utf-8"):
                    offenders.append(name)
            except UnicodeDecodeError:
                continue
    assert not offenders, f"files referring to {OUTSIDE} (not part of the project): {offenders}"


def test_docs_links_resolve():
    """Relative links between pages (and into the repository) point at files that exist."""
    broken = []
    for page in [*PAGES, ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"broken links: {sorted(set(broken))}"
