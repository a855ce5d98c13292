"""What ``paradime cache rm`` and ``paradime cache verify`` act on.

Removal needs an explicit target: a key prefix of at least :data:`MIN_PREFIX` characters
(``KEY`` or ``KIND/KEY``), or ``--all`` (optionally restricted to stage kinds), so that an
empty or short argument never selects the whole store.
"""

from __future__ import annotations

from pipelines.errors import CorruptArtifact, PipelineError
from pipelines.store import STAGE_KINDS, ArtifactStore, StageInfo

MIN_PREFIX = 6


def select_stages(store: ArtifactStore, targets: list[str], remove_all: bool) -> list[StageInfo]:
    """The stages that ``cache rm TARGETS [--all]`` removes.

    Parameters
    ----------
    store : ArtifactStore
        The store.
    targets : list of str
        Key prefixes (``KEY`` or ``KIND/KEY``, at least :data:`MIN_PREFIX` characters of key);
        with ``remove_all``, stage kinds (none: every kind).
    remove_all : bool
        Select every stage (of the given kinds).

    Raises
    ------
    PipelineError
        No target, a short prefix, an unknown kind, or a prefix that matches nothing.
    """
    if remove_all:
        unknown = [t for t in targets if t not in STAGE_KINDS]
        if unknown:
            raise PipelineError(f"with --all, name stage kinds only ({', '.join(STAGE_KINDS)}), "
                                f"not '{unknown[0]}'")
        return [info for kind in (targets or [None]) for info in store.list(kind)]
    if not targets:
        raise PipelineError(f"name the stages to remove (key prefixes of at least {MIN_PREFIX} characters, "
                            "as KEY or KIND/KEY), or pass --all")
    chosen: dict[str, StageInfo] = {}
    for target in targets:
        kind, _, prefix = target.rpartition("/")
        if kind and kind not in STAGE_KINDS:
            raise PipelineError(f"unknown stage kind '{kind}' (one of {', '.join(STAGE_KINDS)})")
        if len(prefix) < MIN_PREFIX:
            raise PipelineError(f"'{target}': a key prefix needs at least {MIN_PREFIX} characters "
                                "(use --all to remove every stage)")
        matches = store.find(prefix, kind or None)
        if not matches:
            raise PipelineError(f"no stored stage matches '{target}' in {store.url}")
        for info in matches:
            chosen[f"{info.kind}/{info.key}"] = info
    return list(chosen.values())


def verify_store(store: ArtifactStore, targets: list[str]) -> tuple[int, list[str]]:
    """Check stages (all, or those matching ``targets``) and, with no target, every index record.

    Returns (number of items checked, one line per damaged item naming it and the problem).
    """
    stages: list[StageInfo] = []
    for target in targets:
        matches = store.find(target)
        if not matches:
            raise PipelineError(f"no stored stage matches '{target}' in {store.url}")
        stages.extend(matches)
    if not targets:
        stages = store.list()
    damaged = []
    for info in stages:
        try:
            store.verify(info.kind, info.key)
        except CorruptArtifact as exc:
            damaged.append(f"{info.kind}/{info.key}: {str(exc).split(': ', 1)[-1]}")
    records = [] if targets else store.records()
    for relpath in records:
        try:
            store.check_json(relpath)
        except CorruptArtifact as exc:
            damaged.append(str(exc))
    return len(stages) + len(records), damaged
