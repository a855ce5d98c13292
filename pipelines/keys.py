"""Stage keys: what each cached stage depends on (DESIGN section 3), never run ids.

A key is ``BLAKE2b(kind, payload, code version)`` over canonical JSON, where the payload
holds exactly the stage's inputs:

============  ===========================================================================
stage         payload
============  ===========================================================================
dataset       content fingerprint of the arrays (:mod:`pipelines.fingerprint`)
knn           input array's key, ``k``, metric, method, seed
relation      input array's key + the relation's canonical spec (its name left out, so
              two specs sharing a recipe share the relation)
derived       func + options + the keys of the arrays/relations it reads
phase ``i``   phase ``i-1``'s key (phase 0: model architecture, input array, seed, warm
              start) + the phase's spec + the losses, relations and data it uses
embedding     last phase's key + the embedded array's fingerprint + model method
report        embedding key + labels + metric settings
============  ===========================================================================

The code version of a stage (:mod:`pipelines.code_versions`) is the package version plus a
hash of the sources of every ``paradime_core`` module the stage imports (read as files,
nothing imported), so editing the loss code invalidates trained phases but not kNN graphs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines import errors
from pipelines.code_versions import STAGE_ENTRY_MODULES, code_version
from pipelines.fingerprint import text_fingerprint


def stage_key(kind: str, payload: Any) -> str:
    """The key of a stage of ``kind`` with inputs ``payload``."""
    return text_fingerprint(kind, payload, code_version(kind))


@dataclass
class Node:
    """One stage of a plan: its kind, the spec element it computes, its key and inputs."""

    id: str
    kind: str  # knn | relations | derived | phases | embeddings | reports
    name: str
    key: str
    deps: list[str] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)
    index: int | None = None  # phase index


@dataclass
class Plan:
    """Every stage of one run, in execution order, with its key."""

    dataset_key: str
    fingerprints: dict[str, str]
    n_items: int
    seed: int
    out_dim: int
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, node: Node) -> Node:
        self.nodes[node.id] = node
        return node

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_key": self.dataset_key, "fingerprints": self.fingerprints, "n_items": self.n_items,
                "seed": self.seed, "out_dim": self.out_dim, "nodes": [asdict(n) for n in self.nodes.values()]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        plan = cls(raw["dataset_key"], dict(raw["fingerprints"]), int(raw["n_items"]), int(raw["seed"]),
                   int(raw["out_dim"]))
        for node in raw["nodes"]:
            plan.add(Node(**node))
        return plan

    @property
    def phases(self) -> list[Node]:
        return self.of_kind("phases")

    @property
    def final_phase(self) -> Node:
        return self.phases[-1]


def _canonical_relation(rel: Any) -> dict[str, Any]:
    recipe = rel.to_dict()
    recipe.pop("name", None)
    return recipe


def make_plan(spec: Any, dataset_key: str, fingerprints: dict[str, str], n_items: int, *,
              seed: int = 0, out_dim: int = 2, warm_start: str | None = None,
              embed_method: str = "embed", metrics: dict[str, Any] | None = None) -> Plan:
    """The stages of ``spec`` on the dataset ``dataset_key`` with array fingerprints ``fingerprints``."""
    from paradime_core.spec import blocks
    from pipelines.ingest import with_label_alias

    fingerprints = with_label_alias(fingerprints)
    plan = Plan(dataset_key, dict(fingerprints), int(n_items), int(seed), int(out_dim))
    derived_names = {d.name for d in spec.derived_data}
    missing = sorted(spec.data_keys() - set(fingerprints) - {"index"})
    if missing:
        raise errors.DataError(f"the spec reads dataset key(s) {', '.join(missing)} but the dataset has only "
                        f"{', '.join(sorted(fingerprints))}")

    def data_input(name: str) -> str:
        """The key of dataset entry ``name`` (an ingested array or derived data)."""
        if name in derived_names:
            return ensure_derived(name).key
        if name == "index":
            return f"index:{n_items}"
        return f"array:{fingerprints[name]}"

    def ensure_relation(name: str) -> Node:
        node_id = f"relation:{name}"
        if node_id in plan.nodes:
            return plan.nodes[node_id]
        index, rel = next((i, r) for i, r in enumerate(spec.relations) if r.name == name)
        source = data_input(rel.data)
        deps = [f"derived:{rel.data}"] if rel.data in derived_names else []
        recipe = _canonical_relation(rel)
        request = blocks.build_relation(rel, f"relations[{index}]").knn_request(n_items)
        if request is not None:  # a neighbour relation: the kNN graph is its own stage
            knn_payload = {"input": source, "k": int(request.k), "metric": str(request.metric),
                           "method": str(request.method), "seed": int(request.seed)}
            knn_id = f"knn:{name}"
            plan.add(Node(knn_id, "knn", name, stage_key("knn", knn_payload), list(deps), knn_payload))
            deps = [*deps, knn_id]
        payload = {"input": source, "recipe": recipe}
        return plan.add(Node(node_id, "relations", name, stage_key("relations", payload), deps, payload,
                             index=index))

    def ensure_derived(name: str) -> Node:
        node_id = f"derived:{name}"
        if node_id in plan.nodes:
            return plan.nodes[node_id]
        index, entry = next((i, d) for i, d in enumerate(spec.derived_data) if d.name == name)
        inputs, deps = [], []
        for kind, key in entry.keys:
            if kind == "rels":
                node = ensure_relation(key)
                inputs.append(["rels", node.key])
                deps.append(node.id)
            else:
                inputs.append(["data", data_input(key)])
                if key in derived_names:
                    deps.append(f"derived:{key}")
        recipe = entry.to_dict()
        recipe.pop("name", None)
        payload = {"recipe": recipe, "inputs": inputs}
        return plan.add(Node(node_id, "derived", name, stage_key("derived", payload), deps, payload,
                             index=index))

    for entry in spec.derived_data:
        ensure_derived(entry.name)
    for rel in spec.relations:
        if rel.level == "global":
            ensure_relation(rel.name)

    global_names = {r.name for r in spec.relations if r.level == "global"}
    batch_specs = {r.name: _canonical_relation(r) for r in spec.relations if r.level == "batch"}
    model = spec.model.to_dict() if spec.model is not None else {"type": "default", "options": {}}
    previous: Any = {"model": model, "input": data_input("main"), "n_items": int(n_items),
                     "out_dim": int(out_dim), "seed": int(seed), "warm_start": warm_start}
    previous_id: str | None = None
    for index, phase in enumerate(spec.training_phases):
        losses = [spec.loss(name) for name in phase.components]
        rel_names = {r for loss in losses for r in loss.rels}
        rel_names |= {v for v in phase.sampling.options.values() if isinstance(v, str) and v in global_names}
        data_names = {"main"} | {d for loss in losses for d in loss.data}
        deps = [f"relation:{r}" for r in sorted(rel_names & global_names)]
        deps += [f"derived:{d}" for d in sorted(data_names & derived_names)]
        if previous_id is not None:
            deps.append(previous_id)
        payload = {
            "previous": previous,
            "phase": phase.to_dict(),
            "losses": [loss.to_dict() for loss in losses],
            "global_relations": {r: plan.nodes[f"relation:{r}"].key for r in sorted(rel_names & global_names)},
            "batch_relations": {r: batch_specs[r] for r in sorted(rel_names) if r in batch_specs},
            "data": {d: data_input(d) for d in sorted(data_names)},
            "seed": int(seed),
        }
        label = phase.name or f"phase_{index}"
        node = plan.add(Node(f"phase:{index}", "phases", label, stage_key("phases", payload), deps, payload,
                             index=index))
        previous, previous_id = node.key, node.id

    embed_payload = {"model": plan.final_phase.key, "data": fingerprints["main"], "method": embed_method}
    embed = plan.add(Node("embed:train", "embeddings", "train", stage_key("embeddings", embed_payload),
                          [plan.final_phase.id], embed_payload))
    report_payload = {"embedding": embed.key, "labels": fingerprints.get("y"), "data": fingerprints["main"],
                      "metrics": metrics or {}}
    plan.add(Node("report:train", "reports", "train", stage_key("reports", report_payload), [embed.id],
                  report_payload))
    return plan


def embed_key(model_key: str, data_fingerprint: str, method: str = "embed") -> str:
    """Key of embedding ``data_fingerprint`` with the model of phase stage ``model_key``."""
    return stage_key("embeddings", {"model": model_key, "data": data_fingerprint, "method": method})


def plan_cache_key(spec_text: str, dataset_key: str, n_items: int, seed: int, out_dim: int,
                   warm_start: str | None) -> str:
    """Where a plan made from exactly this spec text and these inputs is remembered.

    Includes every stage kind's code version, so a code change makes a new plan.
    """
    versions = {kind: code_version(kind) for kind in STAGE_ENTRY_MODULES}
    return text_fingerprint("plan", spec_text, dataset_key, int(n_items), int(seed), int(out_dim), warm_start,
                            versions)


def spec_id(spec: Any, seed: int, out_dim: int) -> str:
    """Identity of a spec + settings across datasets (to find a spec's latest model)."""
    return text_fingerprint("spec", spec.to_dict(), int(seed), int(out_dim))[:24]
