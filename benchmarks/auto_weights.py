"""``weights: auto`` on the settings of Figs. 3-5, against the paper's weight sweeps.

    python benchmarks/auto_weights.py [--quick] [--only fig3 fig4 fig5] [--no-nearest] [--scheme gradient|magnitude]
                                      [--freeze-after K|never]

Each figure's compound-loss phase is trained once with balanced weights, ``loss: {weights:
{auto: <scheme>, freeze_after: K}}`` (paradime_core.training.balancing; the defaults,
gradient and 1, are ``weights: auto``; ``--freeze-after never`` keeps the running weights),
on exactly the settings of ``experiments/fig3.py``, ``fig4.py`` and ``fig5.py`` (data, spec,
epochs, learning rate, seed), and measured with those experiments' own measures. The weights
auto ended with (last-epoch means) give an effective ratio, ``w_emb = w_umap / (w_umap +
w_classify)`` for Fig. 3 and ``R = w_tsne / w_other`` for Figs. 4 and 5; the sweep point
nearest to it (on a log scale of the ratio) is rerun with its fixed weights on the same
code, for a same-code comparison (``--no-nearest`` skips it); ``--reference`` reruns only each
figure's reference point (the classifier alone, plain parametric t-SNE, unguided t-SNE). The
runs are single-threaded and one after another. Writes
``docs/figures/auto_weights_<scheme>_<freeze<K> | never>[_<figures>].json`` (the figures
named when ``--only`` leaves some out; ``auto_weights_reference.json`` with ``--reference``;
``--quick``: tiny sizes, into ``outputs/experiments-quick/``) and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import fig3, fig4, fig5  # noqa: E402
from experiments.common import (  # noqa: E402
    covtype_balanced,
    mnist,
    phase,
    quiet_fit,
    spec,
    start,
    timed,
)
from paradime_core import Routine  # noqa: E402

FIGURES = ("fig3", "fig4", "fig5")
AUTO: str | dict = "auto"  # the balanced weights the runs use (set from --scheme and --freeze-after)


def last_weights(routine: Routine, phase_name: str) -> dict[str, float]:
    """The mean weight of each component over the phase's last epoch (``weight:<name>``)."""
    history = routine.history_[phase_name]
    return {key.split(":", 1)[1]: values[-1] for key, values in history.items() if key.startswith("weight:")}


def balanced_run(fit, phase_name: str, first: str, second: str) -> dict:
    """Measures of the run with balanced weights, the weights of its last epoch and their ratio
    ``R = w_first / w_second``."""
    measured, routine = fit(AUTO)
    weights = last_weights(routine, phase_name)
    return {**measured, "weights_last_epoch": weights, "R_equivalent": weights[first] / weights[second]}


def nearest(value: float, grid: list[float]) -> float:
    """The grid point nearest to ``value`` on a log scale."""
    return min(grid, key=lambda g: abs(math.log(g) - math.log(value)))


def run_fig3(run, quick: bool, with_nearest: bool, reference: bool) -> dict:
    X, y = mnist()
    n_train, n_test = (1000, 1000) if quick else (fig3.N_TRAIN, fig3.N_TEST)
    train, test = fig3.split(n_train, n_test)
    data = {"main": X[train], "labels": y[train]}

    def fit(weights) -> tuple[dict, Routine]:
        s = spec("hybrid_umap_classifier")
        hybrid = phase(s, "hybrid")
        hybrid.weights = weights
        hybrid.epochs = 1 if quick else fig3.EPOCHS
        with timed(run, f"fig3 weights {weights}") as t:
            routine = quiet_fit(Routine(s, seed=0, verbose=False), data)
        row = fig3.evaluate(routine, X, y, train, test)
        row.pop("Y_test")
        return {**row, "fit_s": t["s"]}, routine

    if reference:
        return {"reference": {"w_emb": 0.0, **fit([0.0, 1.0])[0]}}
    auto = balanced_run(fit, "hybrid", "umap", "classify")
    ratio = auto["R_equivalent"]
    auto["w_emb_equivalent"] = ratio / (1.0 + ratio)
    out = {"auto": auto}
    if with_nearest:
        grid = [g for g in fig3.WEIGHTS if 0 < g < 1]
        w_emb = min(grid, key=lambda g: abs(math.log(g / (1 - g)) - math.log(ratio)))
        out["nearest"] = {"w_emb": w_emb, **fit([w_emb, 1.0 - w_emb])[0]}
    return out


def run_fig4(run, quick: bool, with_nearest: bool, reference: bool) -> dict:
    n_items = 700 if quick else 7000
    X, y, _ = covtype_balanced(n_items, seed=0)
    epochs, perplexity = (2, 30) if quick else (fig4.EPOCHS, fig4.PERPLEXITY)
    data = {"main": X, "labels": y}

    def fit(weights) -> tuple[dict, Routine]:
        s = spec("supervised_tsne_triplet")
        fig4.configure(s, epochs, perplexity)
        phase(s, "embedding").weights = weights
        with timed(run, f"fig4 weights {weights}") as t:
            routine = quiet_fit(Routine(s, seed=0, verbose=False), data)
        return {**fig4.measures(X, routine.transform(X), y), "fit_s": t["s"]}, routine

    if reference:
        return {"reference": {"triplet_weight": 0.0, **fit([1.0, 0.0])[0]}}
    out = {"auto": (auto := balanced_run(fit, "embedding", "tsne", "triplet"))}
    if with_nearest:
        ratio = nearest(auto["R_equivalent"], [float(r) for r in fig4.RATIOS])
        out["nearest"] = {"R": ratio, **fit([ratio, 1.0])[0]}
    return out


def run_fig5(run, quick: bool, with_nearest: bool, reference: bool) -> dict:
    n_items = 700 if quick else 7000
    X, y, features = covtype_balanced(n_items, seed=0)
    epochs, perplexity = (2, 30) if quick else (fig5.EPOCHS, fig5.PERPLEXITY)

    def fit(weights) -> tuple[dict, Routine]:
        s = spec("attribute_guided_tsne")
        fig5.configure(s, epochs, perplexity, weights)
        with timed(run, f"fig5 weights {weights}") as t:
            routine = quiet_fit(Routine(s, seed=0, verbose=False), {"main": X})
        return {**fig5.evaluate(routine, X, y, features)[0], "fit_s": t["s"]}, routine

    if reference:
        return {"reference": {"w_tsne": 1.0, "w_corr": 0.0, **fit([1.0, 0.0])[0]}}
    out = {"auto": (auto := balanced_run(fit, "embedding", "tsne", "guide"))}
    if with_nearest:
        guided = [w_tsne for w_tsne, w_corr in fig5.WEIGHTS if w_corr > 0]
        ratio = nearest(auto["R_equivalent"], guided)
        out["nearest"] = {"w_tsne": ratio, "w_corr": 1.0, **fit([ratio, 1.0])[0]}
    return out


RUNNERS = {"fig3": run_fig3, "fig4": run_fig4, "fig5": run_fig5}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES))
    parser.add_argument("--no-nearest", action="store_true", help="skip the rerun of the nearest sweep point")
    parser.add_argument("--reference", action="store_true",
                        help="only rerun each figure's reference (Fig. 3: the classifier alone; Fig. 4: plain "
                             "parametric t-SNE; Fig. 5: unguided), into auto_weights_reference.json")
    parser.add_argument("--scheme", choices=("gradient", "magnitude"), default="gradient",
                        help="balance gradient norms at the model outputs (default) or loss values")
    parser.add_argument("--freeze-after", default="1",
                        help="fix the balanced weights after K epochs, or 'never' (default 1: weights: auto)")
    args, rest = parser.parse_known_args(argv)
    global AUTO
    freeze_after = args.freeze_after if args.freeze_after == "never" else int(args.freeze_after)
    AUTO = {"auto": args.scheme, "freeze_after": freeze_after}
    name = f"auto_weights_{args.scheme}_{'never' if freeze_after == 'never' else f'freeze{freeze_after}'}"
    if set(args.only) != set(FIGURES):
        name = f"{name}_{'_'.join(args.only)}"
    if args.reference:
        name = "auto_weights_reference"
    run = start(name, __doc__.splitlines()[0], rest)
    for name in args.only:
        run.results[name] = RUNNERS[name](run, run.quick, not args.no_nearest, args.reference)
        run.log(f"{name}: {json.dumps(run.results[name], default=float)}")
    run.results["settings"] = {"seed": 0, "torch_threads": 1, "weights": AUTO, "running_average_decay": 0.99,
                               "figures": args.only, "nearest_rerun": not args.no_nearest}
    path = run.finish()
    record = json.loads(path.read_text())
    record["command"] = " ".join(["python benchmarks/auto_weights.py", *(argv if argv is not None else sys.argv[1:])])
    path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
