import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tests/objectives.py is importable as `objectives` by configs (module:attr) and subprocesses
sys.path.insert(0, str(ROOT / "tests"))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
