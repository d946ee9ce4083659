"""A table as the Dagster UI shows it in an asset's metadata."""

from typing import Any

import dagster as dg
import pandas as pd

from glue_pipeline.tables import column_schema, preview


def table_schema(columns: list[tuple[str, str]]) -> dg.TableSchemaMetadataValue:
    """A column schema (tables.column_schema) as Dagster shows it."""
    return dg.MetadataValue.table_schema(dg.TableSchema(columns=[dg.TableColumn(name, dtype)
                                                                 for name, dtype in columns]))


def table_metadata(frame: pd.DataFrame, path: object | None = None, preview_rows: int = 10) -> dict[str, Any]:
    """Row count, column schema and a preview, as the Dagster UI shows them."""
    metadata: dict[str, Any] = {"dagster/row_count": len(frame),
                                "dagster/column_schema": table_schema(column_schema(frame)),
                                "preview": dg.MetadataValue.md(preview(frame, preview_rows))}
    if path is not None:
        metadata["path"] = dg.MetadataValue.path(str(path))
    return metadata
