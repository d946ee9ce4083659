"""The documentation store, and the only place that speaks SQL: engines and transactions
(engine), the tables (schema), their revisions (migrate), the seed loader (seed), one tenant's
sync (writer), a run's bookkeeping (runs), match decisions (decisions), data sources (sources)
and the reads across tenants (overview). Rows leave it as dicts, dataclasses or DataFrames."""
