"""glue-pipeline: Microsoft 365 to IT-documentation sync on Dagster."""
