"""A table as the Dagster UI shows it in an asset's metadata."""

from typing import Any

import dagster as dg
import pandas as pd

from glue_pipeline.tables import preview


def table_metadata(frame: pd.DataFrame, path: object | None = None, preview_rows: int = 10) -> dict[str, Any]:
    """Row count, column schema and a preview, as the Dagster UI shows them."""
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()])
    metadata: dict[str, Any] = {"dagster/row_count": len(frame), "dagster/column_schema": schema,
                                "preview": dg.MetadataValue.md(preview(frame, preview_rows))}
    if path is not None:
        metadata["path"] = dg.MetadataValue.path(str(path))
    return metadata
