"""Run every benchmark and write bench/results/<name>.json."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from bench import gate

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    """Run the benchmarks given on the command line (default: all)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    RESULTS.mkdir(exist_ok=True)
    sizes = tuple(int(a) for a in sys.argv[1:]) or (10, 100, 1000)
    figures = gate.run(sizes)
    path = RESULTS / "gate.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
