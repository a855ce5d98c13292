"""paradime pipelines: Prefect flows of cached stages over a Zarr artifact store.

The math lives in :mod:`paradime_core`; this package turns a spec into stages (ingest,
global relations, derived data, one stage per training phase, embedding, report), keys
each stage by the content of its inputs, stores results in Zarr and runs the flows with
Prefect and Dask. Importing it sets Prefect's offline defaults (see
:mod:`pipelines.settings`) before anything imports prefect.
"""

from pipelines.settings import apply_prefect_defaults

apply_prefect_defaults()

__all__ = ["apply_prefect_defaults"]
