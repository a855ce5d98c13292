"""Shared pieces of the paper experiments: command line, data subsets, specs, output files.

Every experiment is one command (``python -m experiments.fig2``) with fixed seeds. Full runs
write ``docs/figures/<name>.png`` and ``docs/figures/<name>.json`` (numbers, settings and
the wall time); ``--quick`` runs tiny sizes into ``outputs/experiments-quick/`` so that a
smoke test never overwrites the reported results.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "specs"
FIGURES = ROOT / "docs" / "figures"
QUICK_OUT = ROOT / "outputs" / "experiments-quick"
TORCH_THREADS = 1  # measured: 2 threads are several times slower on the shared 2-core machine


@dataclass
class Run:
    """One experiment's command-line settings, output folder and collected numbers."""

    name: str
    quick: bool
    out: Path
    started: float = field(default_factory=time.perf_counter)
    results: dict[str, Any] = field(default_factory=dict)

    def path(self, suffix: str) -> Path:
        return self.out / f"{self.name}{suffix}"

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def log(self, message: str) -> None:
        print(f"[{self.name} {self.elapsed():7.1f}s] {message}", flush=True)

    def save_figure(self, fig: Any, suffix: str = ".png", dpi: int = 90) -> Path:
        from paradime_core.plotting import save_png

        path = shrink_png(save_png(fig, self.path(suffix), dpi=dpi))
        self.log(f"wrote {_shown(path)} ({path.stat().st_size // 1024} KiB)")
        return path

    def write_csv(self, rows: Sequence[Mapping[str, Any]], suffix: str = ".csv") -> Path:
        path = self.path(suffix)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        self.log(f"wrote {_shown(path)}")
        return path

    def finish(self) -> Path:
        """Write the numbers with the wall time and the machine to ``<name>.json``."""
        self.results["wall_time_s"] = round(self.elapsed(), 1)
        self.results["quick"] = self.quick
        self.results["command"] = f"python -m experiments.{self.name}" + (" --quick" if self.quick else "")
        self.results["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                   "python": platform.python_version(), "torch": torch.__version__}
        path = self.path(".json")
        path.write_text(json.dumps(_plain(self.results), indent=1) + "\n")
        self.log(f"wrote {_shown(path)}; wall time {self.results['wall_time_s']} s")
        return path


def shrink_png(path: Path) -> Path:
    """Re-encode a PNG with a 256-colour adaptive palette (3-4x smaller for scatterplots)."""
    from PIL import Image

    with Image.open(path) as image:
        paletted = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    paletted.save(path, optimize=True)
    return path


def start(name: str, description: str, argv: Sequence[str] | None = None) -> Run:
    """Parse ``--quick`` / ``--out``, fix the seeds and the torch thread count."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test), written to "
                        "outputs/experiments-quick/ instead of docs/figures/")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: docs/figures)")
    args = parser.parse_args(argv)
    out = args.out or (QUICK_OUT if args.quick else FIGURES)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(TORCH_THREADS)
    torch.manual_seed(0)
    np.random.seed(0)
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", category=FutureWarning)
    run = Run(name=name, quick=args.quick, out=out)
    run.log(f"start ({'quick' if args.quick else 'full'}), output in {out}")
    return run


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python numbers/lists, floats rounded."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        return round(float(value), 5)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@contextmanager
def timed(run: Run, what: str) -> Iterator[dict[str, float]]:
    """Log and measure a block: ``with timed(run, "fit") as t: ...; t["s"]``."""
    record: dict[str, float] = {}
    begin = time.perf_counter()
    yield record
    record["s"] = time.perf_counter() - begin
    run.log(f"{what}: {record['s']:.1f} s")


def reference_library(module: str) -> Any:
    """Import a comparison library of the ``benchmark`` extra, or stop with how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(f"this experiment compares with {module}, which is not installed: "
                         "run `make setup-bench` (pip install -e \".[benchmark]\")") from exc


# --------------------------------------------------------------------------- data
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 MNIST images as float32 pixels / 255 (70000, 784) and their labels."""
    from paradime_core.datasets import load_dataset

    ds = load_dataset("mnist", download=False, progress=False)
    return ds.X.reshape(len(ds.X), -1).astype(np.float32) / 255.0, ds.y.astype(np.int64)


COVTYPE_BALANCED_ROWS = 15_120  # the first 15,120 rows: 2,160 of each of the 7 classes


def covtype_balanced(n_items: int = 7000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A class-balanced covertype subset: the first 10 (numeric) attributes, standardised.

    ``n_items / 7`` rows of each class drawn without replacement (seeded) from the
    class-balanced first 15,120 rows; labels 0..6 (covertype's 1..7 minus one).
    """
    from paradime_core.datasets import load_dataset

    ds = load_dataset("covtype_first20k", download=False, progress=False)
    X = ds.X[:COVTYPE_BALANCED_ROWS, :10].astype(np.float64)
    y = ds.y[:COVTYPE_BALANCED_ROWS].astype(np.int64) - 1
    rng = np.random.default_rng(seed)
    per_class = n_items // 7
    rows = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                   for c in range(7)]))
    X, y = X[rows], y[rows]
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.astype(np.float32), y, list(ds.feature_names[:10])


COVTYPE_CLASSES = ["Spruce/fir", "Lodgepole pine", "Ponderosa pine", "Cottonwood/willow", "Aspen",
                   "Douglas-fir", "Krummholz"]


# --------------------------------------------------------------------------- specs
def spec(name: str) -> Any:
    """A fresh :class:`Spec` from ``specs/<name>.yaml`` (edit it freely)."""
    from paradime_core import load_spec

    return load_spec(SPEC_DIR / f"{name}.yaml")


def phase(spec_obj: Any, name: str) -> Any:
    """The training phase called ``name``."""
    return next(p for p in spec_obj.training_phases if p.name == name)


def relation(spec_obj: Any, name: str) -> Any:
    return spec_obj.relation(name)


def set_perplexity(spec_obj: Any, perplexity: float, relation_name: str = "p") -> None:
    for transform in spec_obj.relation(relation_name).transforms:
        if transform.type == "perplexity":
            transform.options["perplexity"] = perplexity


def quiet_fit(routine: Any, data: Mapping[str, np.ndarray]) -> Any:
    """``routine.fit(data)`` with library warnings (e.g. perplexity clipping) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return routine.fit(data)


def figure(n_rows: int, n_cols: int, size: float = 3.2, **kwargs: Any) -> tuple[Any, np.ndarray]:
    """A matplotlib Figure (no pyplot state) with a grid of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size * n_cols, size * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False, **kwargs))
    return fig, axes


def _shown(path: Path) -> str:
    """The path relative to the repository when it lies inside it, else as given."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
