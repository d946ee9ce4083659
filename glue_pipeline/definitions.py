"""The code location (pyproject's [tool.dagster] and workspace.yaml point here).

Dagster calls `defs` when it loads the code location, so the resources are built from the
environment of the process that loads it; the objects themselves are under glue_pipeline/defs/.
"""

import dagster as dg

from glue_pipeline.defs.definitions import build_defs


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs()
