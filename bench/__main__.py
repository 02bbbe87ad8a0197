"""Run every benchmark and write bench/results/<name>.json."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from bench import gate, load, package, remediate, rollback, watch

RESULTS = Path(__file__).parent / "results"


def main() -> int:
    """`python -m bench [gate|watch|rollback|remediate|load|package]... [SIZE]...` (default: all, default sizes).

    SIZE is a gate's container count, or a watch's service count (swept in one cluster and in clusters of 50).
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    RESULTS.mkdir(exist_ok=True)
    names = [a for a in sys.argv[1:] if not a.isdigit()] or ["gate", "watch", "rollback", "remediate", "load",
                                                              "package"]
    sizes = tuple(int(a) for a in sys.argv[1:] if a.isdigit())
    for name in names:
        if name == "gate":
            figures = gate.run(sizes) if sizes else gate.run()
        elif name == "watch":
            figures = watch.run(tuple(s for n in sizes for s in ((n, 1), (n, max(1, n // 50))))) if sizes \
                else watch.run()
        else:
            figures = {"rollback": rollback.run, "remediate": remediate.run, "load": load.run,
                       "package": package.run}[name]()
        (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
