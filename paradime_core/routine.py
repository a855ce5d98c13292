"""A routine = spec + model + dataset: the object users fit and keep.

``Routine(spec).fit(data)`` runs the stages in order: global relations, derived data,
training phases. Each stage is also a public method (``compute_relation``,
``compute_derived``, ``build_model``, ``run_phase``) so that an orchestrator can run and
cache them one by one (see ``pipelines/``). ``transform`` embeds any number of new items in
batches. ``save``/``load`` keep spec, architecture, weights and metadata in one file
readable with ``torch.load(weights_only=True)`` — no pickle.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paradime_core.batch import call_model_method
from paradime_core.errors import DataError, SpecError
from paradime_core.relation_data import NeighborGraph, RelationValue, n_items_of
from paradime_core.spec import ModelSpec, Spec, blocks, limits, load_spec
from paradime_core.spec import registry as reg
from paradime_core.training.loop import PhaseResult, train_phase
from paradime_core.value_checks import all_rows_identical, count_bad_rows, first_bad_cell

FORMAT = "paradime-routine/1"
DataLike = np.ndarray | torch.Tensor | Mapping[str, Any]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_dataset(data: DataLike, required: set[str] | None = None) -> dict[str, np.ndarray]:
    """Named arrays of equal length; ``main`` holds the items' features.

    A bare array becomes ``{"main": array}``; the paper's key ``data`` is accepted for
    ``main``. Checks: ``main`` present and 2-D, equal lengths, no NaN/inf in float arrays
    (the first bad row is named), every ``required`` key present.
    """
    if isinstance(data, (np.ndarray, torch.Tensor)) or hasattr(data, "__array__") and not isinstance(data, Mapping):
        data = {"main": data}
    if not isinstance(data, Mapping):
        raise DataError(f"expected an array or a mapping of named arrays, got {type(data).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if value is None:
            continue
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        out[str(key)] = array
    if "main" not in out and "data" in out:
        out["main"] = out.pop("data")
    if "main" not in out:
        raise DataError(f"dataset has no 'main' entry (keys: {', '.join(out) or 'none'})")
    main = out["main"]
    if main.ndim == 1:
        main = main[:, None]
        out["main"] = main
    if main.ndim != 2:
        raise DataError(f"dataset['main'] must be 2-D (items x features), got shape {main.shape}")
    if not np.issubdtype(main.dtype, np.number):
        raise DataError(f"dataset['main'] must be numeric, got dtype {main.dtype}")
    n = main.shape[0]
    if n < 2:
        raise DataError(f"dataset['main'] has {n} item(s); at least 2 are needed")
    if all_rows_identical(main):
        raise DataError(f"dataset['main']: all {n} rows are identical (there is no structure to embed)")
    for key, array in out.items():
        if array.shape[0] != n:
            raise DataError(f"dataset['{key}'] has {array.shape[0]} rows but dataset['main'] has {n}")
        if np.issubdtype(array.dtype, np.floating):
            bad = first_bad_cell(array)  # training computes in float32
            if bad is not None:
                raise DataError(f"dataset['{key}']: {count_bad_rows(array)} row(s) hold NaN, inf or values "
                                f"outside float32 (first: {bad.describe()})")
    missing = sorted((required or set()) - set(out) - {"index"})
    if missing:
        raise DataError(f"the spec reads dataset key(s) {', '.join(missing)} but the dataset has only "
                        f"{', '.join(sorted(out))}")
    out["index"] = np.arange(n, dtype=np.int64)
    return out


def to_tensors(data: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Float arrays as float32, integer arrays as int64, on ``device``."""
    tensors = {}
    for key, array in data.items():
        if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
            tensors[key] = torch.as_tensor(array.astype(np.int64), device=device)
        else:
            tensors[key] = torch.as_tensor(np.asarray(array, dtype=np.float32), device=device)
    return tensors


def float64_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``model`` for inference, its hidden layers in full precision
    (a model trained with ``precision="bfloat16"`` included)."""
    double = copy.deepcopy(model).to(torch.float64)
    if getattr(double, "precision", None) == "bfloat16":
        double.precision = "float32"
    return double


class Routine:
    """A spec-driven parametric DR routine (fit once, embed new items instantly).

    Args:
        spec: a :class:`Spec`, dict, YAML/JSON text or path.
        model: a ``torch.nn.Module`` with ``embed`` (and other named methods the losses
            use); None builds the spec's ``model`` section or a default fully connected net.
        out_dim: embedding dimension of the default model.
        seed: seeds model initialisation and sampling (deterministic on CPU).
        device: ``"cpu"``, ``"cuda"``; default CUDA when present.
        verbose: progress bars.
    """

    def __init__(
        self,
        spec: Spec | Mapping[str, Any] | str | Path,
        model: torch.nn.Module | None = None,
        *,
        out_dim: int = 2,
        seed: int = 0,
        device: str | torch.device | None = None,
        verbose: bool = True,
    ):
        self.spec = load_spec(spec)
        self.model = model
        self.out_dim = out_dim
        self.seed = seed
        self.device = torch.device(device) if device is not None else default_device()
        self.verbose = verbose
        self.history_: dict[str, dict[str, list[float]]] = {}
        self.relations_: dict[str, RelationValue] = {}
        self.model_: torch.nn.Module | None = model
        self.model_spec_: ModelSpec | None = None

    # ------------------------------------------------------------------ stages
    def compute_relation(self, name: str, data: Mapping[str, np.ndarray]) -> RelationValue:
        """Global relation ``name`` over ``data[relation.data]`` (transforms applied)."""
        index, rel = next(((i, r) for i, r in enumerate(self.spec.relations) if r.name == name), (None, None))
        if rel is None or rel.level != "global":
            raise SpecError("relations", f"no global relation named '{name}'")
        built = blocks.build_relation(rel, f"relations[{index}]")
        if rel.data not in data:
            raise DataError(f"relations[{index}].data: dataset has no key '{rel.data}' (keys: {', '.join(data)})")
        value = built.compute(data[rel.data])
        n = data["main"].shape[0]
        if n_items_of(value) != n:
            raise DataError(f"relations[{index}] ('{name}') relates {n_items_of(value)} items; the dataset has {n}")
        return value

    def relation_from_graph(self, name: str, graph: NeighborGraph) -> RelationValue:
        """Neighbour relation ``name`` on its kNN graph ``graph`` (transforms applied), as
        :meth:`compute_relation` gives it when it computes the graph itself."""
        index, rel = next(((i, r) for i, r in enumerate(self.spec.relations) if r.name == name), (None, None))
        if rel is None or rel.level != "global":
            raise SpecError("relations", f"no global relation named '{name}'")
        built = blocks.build_relation(rel, f"relations[{index}]")
        if built.knn_request(graph.n_items) is None:
            raise SpecError(f"relations[{index}].type", f"relation '{name}' is not computed from a kNN graph")
        return built.from_graph(graph)

    def compute_derived(self, name: str, data: Mapping[str, np.ndarray],
                        relations: Mapping[str, RelationValue]) -> np.ndarray:
        """Derived data entry ``name`` from the dataset and global relations."""
        index, entry = next(((i, d) for i, d in enumerate(self.spec.derived_data) if d.name == name), (None, None))
        if entry is None:
            raise SpecError("derived_data", f"no derived data named '{name}'")
        func = blocks.build_data_function(entry, f"derived_data[{index}]")
        inputs = [data[key] if kind == "data" else relations[key] for kind, key in entry.keys]
        result = np.asarray(func(*inputs, **entry.options))
        if result.shape[0] != data["main"].shape[0]:
            raise DataError(f"derived_data[{index}] ('{name}') returned {result.shape[0]} rows, "
                            f"expected {data['main'].shape[0]}")
        return result

    def prepare_all(self, data: DataLike) -> tuple[dict[str, np.ndarray], dict[str, RelationValue]]:
        """Validate the dataset, then compute derived data and global relations in dependency order."""
        dataset = prepare_dataset(data, self.spec.data_keys())
        relations: dict[str, RelationValue] = {}
        derived_names = {d.name for d in self.spec.derived_data}
        global_rels = [r for r in self.spec.relations if r.level == "global"]

        def ensure_relation(name: str) -> None:
            if name not in relations:
                rel = self.spec.relation(name)
                if rel.data in derived_names:
                    ensure_derived(rel.data)
                relations[name] = self.compute_relation(name, dataset)

        def ensure_derived(name: str) -> None:
            if name in dataset:
                return
            entry = next(d for d in self.spec.derived_data if d.name == name)
            for kind, key in entry.keys:
                if kind == "rels":
                    ensure_relation(key)
                elif key in derived_names:
                    ensure_derived(key)
            dataset[name] = self.compute_derived(name, dataset, relations)

        for entry in self.spec.derived_data:
            ensure_derived(entry.name)
        for rel in global_rels:
            ensure_relation(rel.name)
        return dataset, relations

    def build_model(self, data: Mapping[str, np.ndarray], fit_front: bool = True) -> torch.nn.Module:
        """The model to train: the given one, else the spec's ``model`` section or the default.

        ``fit_front=False`` skips fitting the data-dependent front layers (PCA, input-noise
        unit) when the caller loads a full state dict next, which carries them.
        """
        if self.model_ is not None:
            return self.model_.to(self.device)
        model_spec = self.spec.model or ModelSpec("fully_connected", {})
        factory = blocks.check_model(model_spec, "model")
        options = dict(model_spec.options)
        options.setdefault("out_dim", self.out_dim)
        sizes = {"in_dim": int(np.prod(data["main"].shape[1:])), "n_items": int(data["main"].shape[0])}
        if getattr(factory, "builds_on_meta_device", False):  # other models size their own
            limits.check_model_size(factory, {**sizes, **options})
        torch.manual_seed(self.seed)
        try:
            model = factory(**sizes, **options)
        except (TypeError, ValueError) as exc:
            raise SpecError("model.options", str(exc)) from exc
        if "precision" in options and "precision" in getattr(model, "config", {}):
            options["precision"] = model.config["precision"]  # 'auto' as resolved here: a reload matches
        self.model_spec_ = ModelSpec(reg.MODELS.resolve(model_spec.type) or model_spec.type,
                                     {**options, "in_dim": int(np.prod(data["main"].shape[1:])),
                                      "n_items": int(data["main"].shape[0])})
        if fit_front and getattr(model, "needs_fit", False):
            model.fit_front(data["main"])  # PCA front layer and input-noise unit from the training items
        self.model_ = model.to(self.device)
        return self.model_

    def run_phase(self, index: int, data: Mapping[str, np.ndarray], relations: Mapping[str, RelationValue],
                  *, tensors: Mapping[str, torch.Tensor] | None = None) -> PhaseResult:
        """Train phase ``index`` on the current model (built on first use)."""
        model = self.model_ if self.model_ is not None else self.build_model(data)
        tensors = tensors if tensors is not None else to_tensors(data, self.device)
        result = train_phase(model, self.spec, index, tensors, relations, seed=self.seed,
                             device=self.device, progress=self.verbose)
        self.history_[result.name] = result.history
        return result

    # ------------------------------------------------------------------ fit / transform
    def fit(self, data: DataLike,
            relation_hook: Callable[[dict[str, RelationValue]], None] | None = None) -> Routine:
        """Relations, derived data, then every training phase in order.

        ``relation_hook(relations)``, when given, may replace global relation values in place
        after they are computed and before training (a supervised estimator mixes labels into
        its graph there).
        """
        self.build_model(prepare_dataset(data, self.spec.data_keys()))  # model errors before any relation work
        dataset, relations = self.prepare_all(data)
        if relation_hook is not None:
            relation_hook(relations)
        self.relations_ = relations
        tensors = to_tensors(dataset, self.device)
        for index in range(len(self.spec.training_phases)):
            self.run_phase(index, dataset, relations, tensors=tensors)
        return self

    def transform(self, X: np.ndarray | torch.Tensor, method: str = "embed", batch_size: int = 65536,
                  dtype: type = np.float32) -> np.ndarray:
        """Embed new items (any number, in batches) with ``model.<method>``.

        ``dtype=np.float64`` computes with a float64 copy of the model: each row's result
        then no longer depends on the other rows of its batch beyond float64 rounding.
        """
        if self.model_ is None:
            raise RuntimeError("the routine is not fitted yet: call fit() first")
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if X.ndim == 1:
            X = X[:, None]
        if getattr(self.model_, "input_key", None) == "index":
            raise RuntimeError("a direct (non-parametric) model cannot embed new items")
        self.model_.eval()
        model = self.model_ if dtype == np.float32 else float64_copy(self.model_)
        chunks = []
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                rows = np.require(X[start:start + batch_size], dtype=dtype, requirements="CW")  # torch: writable
                block = torch.as_tensor(rows, device=self.device)
                chunks.append(call_model_method(model, method, block).cpu().numpy())
        if not chunks:
            return np.zeros((0, self.out_dim), dtype=dtype)
        return np.concatenate(chunks)

    def embedding_of_training_items(self, data: DataLike) -> np.ndarray:
        """Embedding of the fitted items (works for direct models too)."""
        if getattr(self.model_, "input_key", None) == "index":
            with torch.no_grad():
                idx = torch.arange(self.model_.n_items, device=self.device)
                return call_model_method(self.model_, "embed", idx).cpu().numpy()
        dataset = prepare_dataset(data)
        return self.transform(dataset["main"])

    # ------------------------------------------------------------------ export
    def to_onnx(self, path: str | Path, method: str = "embed", X_train: np.ndarray | None = None,
                feature_names: list[str] | None = None) -> Path:
        """Export ``model.<method>`` as ONNX (see :func:`paradime_core.export.routine_to_onnx`).

        Parameters
        ----------
        path : str or Path
            The ``.onnx`` file to write.
        method : str
            The model method (``embed``; ``classify``, ``encode``, ``decode`` on request).
        X_train : numpy.ndarray, optional
            The training rows; their embedding's bounds go into the ONNX metadata.
        feature_names : list of str, optional
            Names of the input columns.
        """
        from paradime_core.export import routine_to_onnx

        return routine_to_onnx(self, path, method=method, X_train=X_train, feature_names=feature_names)

    def to_web(self, out_dir: str | Path, X_train: np.ndarray, labels: np.ndarray | None = None,
               **options: Any) -> Path:
        """Write a static page that embeds new rows in the browser (see
        :func:`paradime_core.export.routine_to_web`, which takes ``options``).

        Parameters
        ----------
        out_dir : str or Path
            The folder to write.
        X_train : numpy.ndarray
            The training rows, drawn as the background scatter plot.
        labels : numpy.ndarray, optional
            Labels of the training rows.
        **options
            Further options of :func:`~paradime_core.export.routine_to_web`.
        """
        from paradime_core.export import routine_to_web

        return routine_to_web(self, out_dir, X_train, labels=labels, **options)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """One file: spec, model type + options, weights, history, metadata (no pickle)."""
        if self.model_ is None:
            raise RuntimeError("nothing to save: the routine is not fitted")
        if self.model_spec_ is None:
            config = getattr(self.model_, "config", None)
            kind = getattr(self.model_, "model_type", None)
            if config is None or kind is None or kind not in reg.MODELS:
                raise TypeError("only models built from the model registry can be saved; register your "
                                "model class with paradime_core.register_model and give it .config and .model_type")
            self.model_spec_ = ModelSpec(kind, dict(config))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "spec": self.spec.to_json(),
            "model": json.dumps(self.model_spec_.to_dict()),
            "state_dict": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
            "history": json.dumps(self.history_),
            "settings": json.dumps({"out_dim": self.out_dim, "seed": self.seed}),
            "metadata": json.dumps(dict(metadata or {})),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> Routine:
        """Rebuild a saved routine (``torch.load(weights_only=True)``)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no saved routine at {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupted or foreign file
            raise DataError(f"{path}: not a readable paradime routine ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise DataError(f"{path}: not a paradime routine file (format {payload.get('format') if isinstance(payload, dict) else None!r})")
        settings = json.loads(payload["settings"])
        from paradime_core.spec.blocks import without_optimizer_trials

        with without_optimizer_trials():  # checked when it was trained (and again if trained on)
            spec = Spec.from_json(payload["spec"])
        routine = cls(spec, device=device, verbose=False, **settings)
        model_spec = ModelSpec.from_dict(json.loads(payload["model"]), "model")
        factory = reg.MODELS.get(model_spec.type, "model.type")
        model = factory(**model_spec.options)
        model.load_state_dict(payload["state_dict"])
        routine.model_ = model.to(routine.device).eval()
        routine.model_spec_ = model_spec
        routine.history_ = json.loads(payload["history"])
        routine.metadata_ = json.loads(payload["metadata"])
        return routine
