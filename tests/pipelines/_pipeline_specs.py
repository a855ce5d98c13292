"""Tiny specs and sizes shared by the pipelines tests."""

from __future__ import annotations

N_ROWS = 300

TINY_SPEC = """
name: tiny-umap
description: a two-phase UMAP-like spec small enough for tests
derived_data:
  - {name: pca, func: pca, keys: [[data, main]], options: {n_components: 2}}
relations:
  - name: p
    level: global
    type: neighbor
    options: {n_neighbors: 10, method: faiss_exact}
    transforms: [{type: connect}, {type: symmetrize}]
  - name: q
    level: batch
    type: pdist
    transforms: [{type: cauchy}]
losses:
  - {name: init, type: position, func: mse, keys: {data: [pca]}}
  - {name: emb, type: relation, func: cross_entropy, keys: {rels: [p, q]}}
model: {type: fully_connected, options: {hidden_dims: [16]}}
training_phases:
  - {name: init, epochs: 2, sampling: {type: item, batch_size: 100}, loss: {components: [init]}}
  - name: main
    epochs: {main_epochs}
    sampling: {type: edge, rels: p, batch_size: 128, batches_per_epoch: 4}
    loss: {components: [emb]}
"""


def tiny_spec(main_epochs: int = 3, relation_name: str = "p") -> str:
    """The tiny spec's YAML text (the relation renamed to test recipe sharing)."""
    text = TINY_SPEC.replace("{main_epochs}", str(main_epochs))
    if relation_name != "p":
        text = text.replace("name: p\n", f"name: {relation_name}\n").replace("rels: [p, q]", f"rels: [{relation_name}, q]")
        text = text.replace("rels: p,", f"rels: {relation_name},")
    return text
