"""Run every benchmark and write bench/results/<name>.json."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from bench import gate, load, remediate, watch

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    """`python -m bench [gate|watch|remediate|load]... [SIZE]...` (default: all; sizes 10, 100, 1000)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    RESULTS.mkdir(exist_ok=True)
    names = [a for a in sys.argv[1:] if not a.isdigit()] or ["gate", "watch", "remediate", "load"]
    sizes = tuple(int(a) for a in sys.argv[1:] if a.isdigit()) or (10, 100, 1000)
    for name in names:
        if name in ("gate", "watch"):
            figures = {"gate": gate.run, "watch": watch.run}[name](sizes)
        else:
            figures = {"remediate": remediate.run, "load": load.run}[name]()
        (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
