"""The ready-to-run problem files shipped inside the package (``bbopt examples``).

They live in the repository's ``problems/`` folder; ``bbopt/examples`` points there, and
the wheel carries them as package data, so an installed bbopt runs ``bbopt solve
quickstart`` from any directory. A file's one-line description is its ``description:`` key,
else the first sentence of its leading comment.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bbopt.config import ConfigError, parse_yaml

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`\"])")


def examples() -> dict[str, Path]:
    """Every shipped problem file by name (its file name without ``.yaml``)."""
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.yaml"))}


def describe(path: Path, width: int = 100) -> str:
    """One line: the file's ``description:``, else its leading comment's first sentence."""
    text = path.read_text(encoding="utf-8")
    try:
        data = parse_yaml(text)
    except (ConfigError, yaml.YAMLError):  # a broken file is still listed; running it reports the error
        data = None
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        line = data["description"]
    else:
        comment = []
        for raw in text.splitlines():
            if not raw.startswith("#"):
                break
            comment.append(raw.lstrip("#").strip())
        line = _SENTENCE_END.split(" ".join(comment).strip(), maxsplit=1)[0]
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def find(name_or_path: str) -> tuple[Path, str]:
    """A problem file: an existing path wins, else a shipped example by name.

    Returns the path and the stem that names the run (``runs/<stem>-<time>``).
    """
    path = Path(name_or_path)
    if path.is_file():
        return path, path.stem
    shipped = examples()
    name = path.name.removesuffix(".yaml") if path.parent == Path(".") else None
    if name in shipped:
        return shipped[name], name
    hint = "; shipped examples (bbopt examples): " + ", ".join(shipped) if name is not None else ""
    raise ConfigError("", f"config file {name_or_path} does not exist{hint}")


def init(name: str, dest: str | None = None, force: bool = False) -> Path:
    """Copy shipped example ``name`` to ``dest`` (a file, or a folder to put ``NAME.yaml`` in)."""
    shipped = examples()
    if name.removesuffix(".yaml") not in shipped:
        raise ConfigError("name", f"no shipped example {name!r}; shipped: {', '.join(shipped)}")
    source = shipped[name.removesuffix(".yaml")]
    target = Path(dest) if dest is not None else Path(source.name)
    if target.is_dir():
        target = target / source.name
    if target.exists() and not force:
        raise ConfigError("dest", f"{target} exists; choose another path or pass --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return target
