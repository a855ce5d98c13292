"""Pipeline benchmarks (issue 3): cached reruns, full MNIST against umap-learn, covertype scale.

    python benchmarks/pipeline.py stages              # cold / warm / last-phase-changed runs
    python benchmarks/pipeline.py mnist               # fit 60k + embed 70k vs umap-learn
    python benchmarks/pipeline.py scale               # 581,012 x 54 through the UMAP flow
    python benchmarks/pipeline.py all

Every figure is one JSON line on stdout.

``stages``: ``paradime run <spec> --data mnist`` as a CLI process in Prefect's ephemeral
mode: cold, warm (all stages cached) and with only the last phase's epochs changed; then
the warm run again against a running ``prefect server start``. Per-stage seconds come
from the run record, wall seconds from the process. Targets: warm <= 25 % of cold and
<= 30 s (ephemeral), <= 10 s (server).

``mnist``: the spec fitted on the 60,000 training rows, all 70,000 rows embedded, timed
together, against umap-learn's ``fit_transform`` on all 70,000 rows in the same process;
trustworthiness@10 on 5,000 test rows and 10-NN accuracy of the 10,000 test rows against
the 60,000 training rows for both. ``--seeds N`` fits ours with seeds 0..N-1 (later seeds
reuse the cached kNN and relations): the comparison then takes the cold run's time and the
mean quality, since one fit's trust moves by about +-0.003 with the seed. ``--rounds R``
runs R rounds of a cold fit (seed 0, fresh store) followed by umap-learn, each later round in
a fresh process like the first (umap-learn compiles its numba code on its first call in a
process: ~30 s of its ~55 s here; a second call in the same process takes ~24 s), and takes
the median of the rounds' time ratios: this VM's speed drifts between regimes about a third
apart that last from seconds to minutes, so one round can be off by that much either way.

``scale``: 581,012 x 54 rows (the covertype rows in the shared datasets plus 5 % noise,
``paradime_core.datasets.noise``) as a Zarr array through ``paradime run``; wall time, the run's peak RSS, and
kNN recall@k of the stored graph against exact search on 10,000 sampled rows.

MNIST pixels are 0..255: the spec's model gets ``input_scale: 1/255`` (``--input-scale``).
``--last-epochs N`` shortens the last phase (the changed run then trains N + 1 epochs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
PARADIME = [sys.executable, "-m", "pipelines.cli"]


def emit(record: dict) -> None:
    print(json.dumps(record, default=str), flush=True)


def write_spec(source: Path, target: Path, input_scale: float | None, last_epochs: int | None = None) -> Path:
    raw = yaml.safe_load(source.read_text())
    if input_scale:
        raw.setdefault("model", {"type": "fully_connected", "options": {}})
        raw["model"].setdefault("options", {})["input_scale"] = input_scale
    if last_epochs is not None:
        raw["training_phases"][-1]["epochs"] = last_epochs
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def cli_run(spec: Path, data: str, store: Path, env: dict[str, str]) -> dict:
    """One ``paradime run`` process: wall seconds, peak RSS, and its JSON run record."""
    command = [*PARADIME, "run", str(spec), "--data", data, "--store", str(store), "--json", "--no-progress"]
    rss_file = Path(tempfile.mkstemp(suffix=".rss")[1])
    if shutil.which("time") or Path("/usr/bin/time").exists():
        command = ["/usr/bin/time", "-o", str(rss_file), "-f", "%M", *command]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"paradime run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    text = done.stdout
    record = json.loads(text[text.index("{"):])
    try:
        peak_kb = float(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # upper bound
    rss_file.unlink(missing_ok=True)
    return {"wall_s": round(wall, 2), "record": record, "peak_rss_gb": round(peak_kb / 1024**2, 3)}


def stage_seconds(record: dict) -> dict[str, dict]:
    return {f"{r['kind']}:{r['name']}": {"status": r["status"], "s": r["seconds"]} for r in record["records"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise RuntimeError("prefect server did not start within 180 s")


def bench_stages(args: argparse.Namespace, work: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    store = work / "store-stages"
    shutil.rmtree(store, ignore_errors=True)
    spec = write_spec(Path(args.spec), work / "spec.yaml", args.input_scale, last_epochs=args.last_epochs)
    last = yaml.safe_load(spec.read_text())["training_phases"][-1]["epochs"]
    changed = write_spec(Path(args.spec), work / "spec_changed.yaml", args.input_scale, last_epochs=last + 1)
    runs = {}
    for label, spec_path in (("cold", spec), ("warm", spec), ("last_phase_changed", changed)):
        result = cli_run(spec_path, args.data, store, env)
        runs[label] = result
        executed = [k for k, v in stage_seconds(result["record"]).items() if v["status"] != "cached"]
        emit({"bench": "pipeline", "run": label, "mode": "ephemeral", "data": args.data, "wall_s": result["wall_s"],
              "last_phase_epochs": yaml.safe_load(spec_path.read_text())["training_phases"][-1]["epochs"],
              "flow_s": result["record"]["seconds"], "executed": executed,
              "stages": stage_seconds(result["record"])})
    server, url = start_server(env)
    try:
        server_env = {**env, "PREFECT_API_URL": url}
        cli_run(spec, args.data, store, server_env)  # first contact: client/server warm-up
        result = cli_run(spec, args.data, store, server_env)
        runs["warm_server"] = result
        emit({"bench": "pipeline", "run": "warm", "mode": "server", "wall_s": result["wall_s"],
              "flow_s": result["record"]["seconds"], "stages": stage_seconds(result["record"])})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
    cold, warm = runs["cold"]["wall_s"], runs["warm"]["wall_s"]
    emit({"bench": "pipeline_summary", "cold_s": cold, "warm_s": warm, "warm_over_cold": round(warm / cold, 3),
          "warm_server_s": runs["warm_server"]["wall_s"],
          "targets": {"warm <= 0.25 cold": warm <= 0.25 * cold, "warm <= 30 s": warm <= 30,
                      "warm server <= 10 s": runs["warm_server"]["wall_s"] <= 10}})


def _mnist_metrics(X: np.ndarray, Y: np.ndarray, y: np.ndarray, is_test: np.ndarray) -> dict[str, float]:
    from sklearn.neighbors import KNeighborsClassifier

    from paradime_core.metrics import trustworthiness

    test = np.flatnonzero(is_test)
    train = np.flatnonzero(~is_test)
    sample = test[:5000]
    trust = trustworthiness(X[sample].astype(np.float64), Y[sample].astype(np.float64), k=10, sample=None)
    knn = KNeighborsClassifier(n_neighbors=10).fit(Y[train], y[train])
    return {"trust_at_10": round(float(trust), 4), "knn10_accuracy": round(float(knn.score(Y[test], y[test])), 4)}


def _paradime_mnist(args: argparse.Namespace, work: Path, seeds: int, X: np.ndarray, y: np.ndarray,
                    is_test: np.ndarray) -> list[dict]:
    """Our fits with seeds 0..seeds-1 into a fresh store (the first one cold), each + embed of all rows."""
    from pipelines.flows import run_embed, run_spec
    from pipelines.store import ArtifactStore

    store = work / "store-mnist"
    shutil.rmtree(store, ignore_errors=True)
    spec = write_spec(Path(args.spec), work / "spec.yaml", args.input_scale)
    runs = []
    for seed in range(seeds):  # later seeds reuse the cached ingest, kNN and relations
        start = time.perf_counter()
        fit = run_spec(str(spec), str(work / "mnist_train.npz"), str(store), seed=seed, progress=False, report=False)
        fit_s = time.perf_counter() - start
        embedded = run_embed(fit.model_key, str(work / "mnist_all.npz"), str(store), progress=False)
        total = time.perf_counter() - start
        Y = np.asarray(ArtifactStore(store).open_group("embeddings", embedded.embedding_key)["embedding"][...])
        run = {"bench": "mnist_full", "method": "paradime", "seed": seed, "cold": seed == 0,
               "fit_60k_s": round(fit_s, 1), "total_s": round(total, 1),
               "stages": {f"{r.kind}:{r.name}": r.seconds for r in fit.records + embedded.records},
               **_mnist_metrics(X, Y, y, is_test)}
        emit(run)
        runs.append(run)
    return runs


def _umap_learn_mnist(X: np.ndarray, y: np.ndarray, is_test: np.ndarray) -> dict:
    import umap

    start = time.perf_counter()
    Y_umap = umap.UMAP(n_neighbors=15, random_state=None).fit_transform(X.astype(np.float32) / 255.0)
    theirs = {"bench": "mnist_full", "method": "umap-learn", "total_s": round(time.perf_counter() - start, 1),
              **_mnist_metrics(X, Y_umap, y, is_test)}
    emit(theirs)
    return theirs


def _mnist_round_in_new_process(args: argparse.Namespace, work: Path) -> tuple[dict, dict]:
    """One more round (a cold fit with seed 0, then umap-learn) in a fresh interpreter, as the
    first round ran: umap-learn's numba code compiles on its first call in a process (~30 s of
    its ~55 s here), so a second call in the same process would not be the same measurement."""
    command = [sys.executable, __file__, "mnist", "--seeds", "1", "--rounds", "1", "--spec", args.spec,
               "--input-scale", str(args.input_scale), "--workdir", str(work)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mnist {work.name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for record in records:
        if record.get("bench") == "mnist_full":
            emit({**record, "round": work.name})
    cold = next(r for r in records if r.get("method") == "paradime")
    reference = next(r for r in records if r.get("method") == "umap-learn")
    return cold, reference


def bench_mnist(args: argparse.Namespace, work: Path) -> None:
    from paradime_core.datasets import load_dataset

    dataset = load_dataset("mnist")
    X, y = dataset.X, dataset.y
    is_test = np.asarray(dataset.extras["is_test"], dtype=bool)
    np.savez(work / "mnist_train.npz", X=X[~is_test], y=y[~is_test])
    np.savez(work / "mnist_all.npz", X=X, y=y)
    runs = _paradime_mnist(args, work, args.seeds, X, y, is_test)
    ours = {"total_s": runs[0]["total_s"],  # the cold run: the only one that computes every stage
            "trust_at_10": round(float(np.mean([r["trust_at_10"] for r in runs])), 4),
            "knn10_accuracy": round(float(np.mean([r["knn10_accuracy"] for r in runs])), 4)}
    if len(runs) > 1:
        emit({"bench": "mnist_full", "method": "paradime", "seeds": len(runs), "cold_total_s": ours["total_s"],
              "trust_at_10_mean": ours["trust_at_10"], "knn10_accuracy_mean": ours["knn10_accuracy"],
              "trust_at_10_range": [min(r["trust_at_10"] for r in runs), max(r["trust_at_10"] for r in runs)],
              "knn10_accuracy_range": [min(r["knn10_accuracy"] for r in runs),
                                       max(r["knn10_accuracy"] for r in runs)]})
    if args.skip_umap:
        return
    references = [_umap_learn_mnist(X, y, is_test)]
    ratios = [runs[0]["total_s"] / references[0]["total_s"]]
    for index in range(1, args.rounds):
        cold, reference = _mnist_round_in_new_process(args, work / f"round-{index}")
        references.append(reference)
        ratios.append(cold["total_s"] / reference["total_s"])
    theirs = {key: round(float(np.mean([r[key] for r in references])), 4) for key in ("trust_at_10", "knn10_accuracy")}
    emit({"bench": "mnist_compare", "seeds": len(runs), "rounds": args.rounds,
          "time_ratio": round(float(np.median(ratios)), 3), "time_ratios": [round(r, 3) for r in ratios],
          "trust_gap": round(ours["trust_at_10"] - theirs["trust_at_10"], 4),
          "knn_gap": round(ours["knn10_accuracy"] - theirs["knn10_accuracy"], 4),
          "targets": {"time <= umap-learn": float(np.median(ratios)) <= 1.0,
                      "trust within 0.01": ours["trust_at_10"] >= theirs["trust_at_10"] - 0.01,
                      "knn within 0.01": ours["knn10_accuracy"] >= theirs["knn10_accuracy"] - 0.01}})


def bench_scale(args: argparse.Namespace, work: Path) -> None:
    import zarr

    from paradime_core.datasets.noise import make_noisy_copies
    from paradime_core.neighbors import knn_recall
    from pipelines.store import ArtifactStore

    source = np.load(REPO.parent / "shared" / "datasets" / "covtype_first20k.npz")
    X20k, y20k = source["X"].astype(np.float32), source["y"]
    rows = args.scale_rows
    path = work / f"covtype_{rows}.zarr"
    if not (path / "zarr.json").exists():
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        main = group.create_array("main", shape=(rows, X20k.shape[1]), chunks=(65536, X20k.shape[1]),
                                  dtype="float32", dimension_names=["sample", "feature"])
        labels = group.create_array("y", shape=(rows,), chunks=(65536,), dtype=y20k.dtype,
                                    dimension_names=["sample"])
        for block in make_noisy_copies(X20k, rows, noise=0.05, chunk_rows=65536):
            main[block.start:block.start + len(block.X)] = block.X
            labels[block.start:block.start + len(block.X)] = y20k[block.source]
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect-home")}
    store = work / "store-scale"
    shutil.rmtree(store, ignore_errors=True)
    spec = write_spec(Path(args.spec), work / "spec_scale.yaml", None, last_epochs=args.last_epochs)
    if args.knn_only:
        bench_scale_knn(spec, path, store)
        return
    result = cli_run(spec, str(path), store, env)
    st = ArtifactStore(store)
    knn_record = next(r for r in result["record"]["records"] if r["kind"] == "knn")
    indices = st.open_group("knn", knn_record["key"])["indices"][...]
    X = zarr.open_group(str(path), mode="r")["main"][...]
    recall = knn_recall(X, indices, sample=10_000)
    emit({"bench": "scale", "rows": rows, "features": int(X.shape[1]), "wall_s": result["wall_s"],
          "peak_rss_gb": result["peak_rss_gb"], "knn_recall_at_k": round(recall, 4), "k": int(indices.shape[1]),
          "stages": stage_seconds(result["record"]),
          "targets": {"<= 30 min": result["wall_s"] <= 1800, "peak <= 8 GB": (result["peak_rss_gb"] or 0) <= 8}})


def bench_scale_knn(spec: Path, path: Path, store: Path) -> None:
    """Only ingest and the kNN stage of the scale run (Dask blocks against one index), with recall."""
    import zarr

    from paradime_core.neighbors import knn_recall
    from paradime_core.spec import load_spec
    from pipelines.flows import ingest_stage
    from pipelines.keys import make_plan
    from pipelines.stages import Pipeline
    from pipelines.store import ArtifactStore

    st = ArtifactStore(store)
    start = time.perf_counter()
    ref, record, fingerprints = ingest_stage(str(path), st, progress=False)
    ingest_s = time.perf_counter() - start
    spec_obj = load_spec(spec)
    plan = make_plan(spec_obj, ref.key, fingerprints, int(ref.summary["n_items"]))
    pipeline = Pipeline(st, spec_obj, plan, progress=False)
    knn_id = next(node_id for node_id in plan.nodes if node_id.startswith("knn:"))
    start = time.perf_counter()
    pipeline.run(knn_id)
    knn_s = time.perf_counter() - start
    pipeline.dask.close()
    indices = st.open_group("knn", plan.nodes[knn_id].key)["indices"][...]
    X = zarr.open_group(str(path), mode="r")["main"][...]
    recall = knn_recall(X, indices, sample=10_000)
    emit({"bench": "scale_knn", "rows": int(X.shape[0]), "features": int(X.shape[1]), "k": int(indices.shape[1]),
          "ingest_s": round(ingest_s, 1), "knn_s": round(knn_s, 1),
          "method": st.manifest("knn", plan.nodes[knn_id].key)["summary"].get("method"),
          "knn_recall_at_k": round(recall, 4),
          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["stages", "mnist", "scale", "all"], nargs="?", default="stages")
    parser.add_argument("--spec", default=str(REPO / "specs" / "umap.yaml"))
    parser.add_argument("--data", default="mnist", help="data of the stages benchmark (path or dataset name)")
    parser.add_argument("--input-scale", type=float, default=1 / 255, help="model input scale (0: none)")
    parser.add_argument("--scale-rows", type=int, default=581_012)
    parser.add_argument("--last-epochs", type=int, default=None,
                        help="override the last phase's epochs (the 'changed' run adds one)")
    parser.add_argument("--skip-umap", action="store_true")
    parser.add_argument("--seeds", type=int, default=1,
                        help="mnist: fit with seeds 0..N-1; the comparison takes the cold run's time and the "
                             "mean quality (later seeds reuse the cached kNN and relations)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="mnist: this many rounds of a cold fit and umap-learn, each later round in a fresh "
                             "process; the time ratio is the median of the rounds' ratios (this VM's speed drifts "
                             "by up to a third for tens of seconds), umap-learn's quality the mean")
    parser.add_argument("--knn-only", action="store_true", help="scale: only ingest + kNN stage (+ recall)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "paradime-pipeline-bench"))
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    emit({"bench": "machine", "cpus": os.cpu_count(), "load_avg": os.getloadavg()})
    if args.part in ("stages", "all"):
        bench_stages(args, work)
    if args.part in ("mnist", "all"):
        bench_mnist(args, work)
    if args.part in ("scale", "all"):
        bench_scale(args, work)


if __name__ == "__main__":
    main()
