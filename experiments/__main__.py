"""Run every paper experiment in turn: ``python -m experiments [--quick] [names...]``.

Each experiment runs in its own process (one at a time: they share the machine's cores)
and writes its figures and numbers itself; this prints each one's wall time at the end.
"""

from __future__ import annotations

import subprocess
import sys
import time

EXPERIMENTS = ["fig1", "fig2", "fig3", "fig4", "fig5", "pli"]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")] or EXPERIMENTS
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        print(f"unknown experiment(s): {', '.join(unknown)} (known: {', '.join(EXPERIMENTS)})", file=sys.stderr)
        return 2
    times, failed = {}, []
    for name in names:
        begin = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"experiments.{name}", *(["--quick"] if quick else [])])
        times[name] = time.perf_counter() - begin
        if code != 0:
            failed.append(name)
    for name, seconds in times.items():
        print(f"{name:5s} {seconds:8.1f} s{'  FAILED' if name in failed else ''}")
    print(f"total {sum(times.values()):8.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
