"""The documentation store: SQL tables, the seed loader and per-tenant writes."""
