"""The pipeline's Dagster objects, one concern a module:

    resources.py    the store, Graph and sync resources, built from the environment
    partitions.py   the `tenants` dynamic partitions, and one run over all of them
    discovery.py    customer_tenants (discovery) and the discover_tenants job
    tenants.py      tenant_contacts, one partition per tenant, and the sync_tenants job
    overview.py     organization_matches, contacts_needing_review, configurations_needing_review, their
                    checks, refresh_overview
    decisions.py    the match_decision job (an analyst's decision from the Launchpad)
    doctor.py       the doctor job
    automation.py   the hourly schedule and the sensors that chain sync and overview
    metadata.py     a table as asset metadata (row count, column schema, preview)
    definitions.py  build_defs: all of the above, with the resources
"""
