"""The review_matches job: an analyst's decisions for one tenant, without typing its name or ids.

Picking the tenant's partition in the Launchpad opens the config editor pre-filled from the store
(`prefilled_config`): the organization decision (accept the best suggestion of a suggested
tenant, else wait) with the suggestions listed for reference, and one entry per held user (link
to its one candidate contact, else wait). The analyst edits or deletes lines and launches; each
decision is recorded through glue_pipeline/decisions.py, said in words in the run's log, and one
that fails does not stop the others. `sync_now: true` has the tenant synced once the run
succeeds (the sensor sync_after_review)."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from glue_pipeline.decisions import (
    Decided,
    DecisionError,
    HeldUser,
    TenantReview,
    apply_decision,
    decision_text,
    partition_tenant,
    review_of_partition,
)
from glue_pipeline.defs.partitions import TENANTS
from glue_pipeline.defs.resources import StoreResource
from glue_pipeline.defs.tenants import sync_job
from glue_pipeline.render import terminal_text
from glue_pipeline.settings import store_url_from_env
from glue_pipeline.store.engine import Engine, make_engine

OP = "review_tenant"
UI_ACTOR = "dagster-ui"
PARTITION_TAG = "dagster/partition"
OrganizationAction = Literal["accept", "match", "ignore", "unignore", "create_organization", "wait"]
UserAction = Literal["link", "create", "wait"]


class OrganizationDecision(dg.Config):
    """The tenant's organization match."""

    action: OrganizationAction = Field(
        default="wait", description="accept: the suggestion of `rank`; match: to `organization`; ignore; unignore; "
                                    "create_organization: a new one named after the tenant; wait: no decision.")
    rank: int = Field(default=1, description="accept: which suggestion (1 = the best).")
    organization: str | None = Field(default=None, description="match: the organization's id or exact name "
                                                               "(\"Contoso (id 12)\" counts by its id).")
    force: bool = Field(default=False, description="create_organization: even though an organization has the name "
                                                   "or a strong suggestion exists.")
    now: str | None = Field(default=None, description="For reference: the tenant's match now.")
    suggestions: list[str] = Field(default_factory=list, description="For reference: the suggestions, best first.")


class UserDecision(dg.Config):
    """A user the tenant's last sync held for a decision."""

    user: str = Field(description="The user: its principal name, then its id in parentheses, which is what counts.")
    action: UserAction = Field(default="wait", description="link: to `contact`; create: a new contact although it "
                                                           "looks like an existing one; wait: no decision.")
    contact: str | None = Field(default=None, description="link: the contact, as \"Name (id 42)\" or 42; the id "
                                                          "counts.")
    why: str | None = Field(default=None, description="For reference: why the sync held the user.")


class ReviewConfig(dg.Config):
    """One tenant's decisions; the tenant is the run's partition."""

    organization: OrganizationDecision = Field(default_factory=OrganizationDecision)
    users: list[UserDecision] = Field(default_factory=list, description="The held users; a line deleted, or "
                                                                        "`wait`, leaves the user held.")
    sync_now: bool = Field(default=False, description="Sync the tenant once this run succeeds.")
    decided_by: str = Field(default=UI_ACTOR, description="Who decides, as the audit trail shows it.")


# ---------------------------------------------------------------------------- the pre-filled config


@cache
def _engine(url: str) -> Engine:
    """One engine per store URL for the life of the process (the code location's server)."""
    return make_engine(url)


def _match_now(review: TenantReview) -> str:
    """The tenant's match, in words, and what may be decided."""
    match = review.match
    if match is None:
        return "not synced yet: its first sync matches it by name or suggests organizations"
    by = f", decided by {match['decided_by']}" if match["decided_by"] else ""
    return {
        "matched": f"already matched to organization {review.organization} (id {match['organization_id']}) "
                   f"({match['method']}{by}): nothing to decide; `match` moves it to another organization",
        "ignored": f"ignored{by}: `unignore` gives it back to matching",
        "suggested": "suggested: accept a suggestion by its rank, or match, ignore, create_organization",
        "conflict": "conflict: its suggestion is another tenant's organization; accept it only if both tenants "
                    "are one customer",
        "unmatched": "unmatched: no organization resembles it; match it to one, create_organization, or ignore it",
    }[match["status"]]


def _organization_decision(review: TenantReview) -> OrganizationDecision:
    suggestions = [terminal_text(f"{s['rank']}. {s['organization_name']} (id {s['organization_id']}), "
                                 f"score {s['score']}: {s['reasons']}") for s in review.suggestions]
    accept = review.status == "suggested" and bool(suggestions)
    return OrganizationDecision(action="accept" if accept else "wait", rank=1, now=terminal_text(_match_now(review)),
                                suggestions=suggestions)


def _user_decision(user: HeldUser) -> UserDecision:
    best = user.candidates[0] if user.candidates else None
    return UserDecision(user=terminal_text(f"{user.user_principal_name} (id {user.user_id})"),
                        action="link" if len(user.candidates) == 1 else "wait",
                        contact=terminal_text(f"{best[1] or '(no name)'} (id {best[0]})") if best else None,
                        why=terminal_text(user.reason))


def review_config(review: TenantReview) -> ReviewConfig:
    return ReviewConfig(organization=_organization_decision(review), users=[_user_decision(u) for u in review.held])


def prefilled_config(partition_key: str) -> dict[str, Any]:
    """The run config the Launchpad opens with for a tenant's partition, read fresh from the store
    (GLUE_STORE_URL). Every value from a tenant or the store is a plain one-line string, so a
    name cannot add a key or an entry to it."""
    review = review_of_partition(_engine(store_url_from_env()), partition_key)
    return {"ops": {OP: {"config": review_config(review).model_dump()}}}  # None kept: the fields to fill in


# ---------------------------------------------------------------------------- recording


_TRAILING_ID = re.compile(r"\(id\s+([^()\s]+)\)\s*$")


def named_id(text: str | None) -> str | None:
    """The id a config line names: the `(id X)` that ends it, else the line itself (a bare id or
    a name); None for an empty line. A name holding its own "(id ...)" does not count: ours ends
    the line."""
    text = (text or "").strip()
    found = _TRAILING_ID.search(text)
    return found.group(1) if found else text or None


def _contact_id(text: str | None) -> int:
    ref = named_id(text)
    if ref is None or not ref.isdigit():
        raise DecisionError(f"link needs a contact, as \"Name (id 42)\" or 42, not '{text or ''}'")
    return int(ref)


def _user_id(text: str) -> str:
    ref = named_id(text)
    if ref is None:
        raise DecisionError("the entry names no user: give it as \"UPN (id USER_ID)\"")
    return ref


@dataclass(frozen=True)
class Planned:
    """A decision the config asks for: `what` names it in a failure, `action` is apply_decision's,
    and `record(engine, tenant_id, by)` records it."""

    what: str
    action: str
    record: Callable[[Engine, str, str], Decided]


def _organization(org: OrganizationDecision) -> Planned:
    def record(engine: Engine, tenant_id: str, by: str) -> Decided:
        return apply_decision(engine, org.action, tenant_id, organization=named_id(org.organization), rank=org.rank,
                              force=org.force, by=by)
    return Planned(f"organization ({org.action})", org.action, record)


USER_ACTIONS = {"link": "link_user", "create": "approve_create"}


def _user(user: UserDecision) -> Planned:
    action = USER_ACTIONS[user.action]

    def record(engine: Engine, tenant_id: str, by: str) -> Decided:
        contact_id = _contact_id(user.contact) if action == "link_user" else None
        return apply_decision(engine, action, tenant_id, user_id=_user_id(user.user), contact_id=contact_id, by=by)
    return Planned(terminal_text(f"user {user.user} ({user.action})"), action, record)


def planned_decisions(config: ReviewConfig) -> list[Planned]:
    """The decisions of the config, the organization's first (a user is linked within the
    tenant's organization); `wait` plans nothing."""
    org = [] if config.organization.action == "wait" else [_organization(config.organization)]
    return org + [_user(user) for user in config.users if user.action != "wait"]


LAUNCH_SYNC = "launch sync_tenants for this partition, or set sync_now: true"
SYNC_NOW = "sync_tenants starts for this partition once this run succeeds (sync_now: true)"


@dg.op(name=OP, description="Record the tenant's decisions (the run's partition), each said in words in the log; "
                            "the run fails at the end naming those that could not be recorded.")
def review_tenant(context: dg.OpExecutionContext, config: ReviewConfig, store: StoreResource) -> None:
    tenant_id = partition_tenant(store.engine, context.partition_key)
    planned = planned_decisions(config)
    then = SYNC_NOW if config.sync_now else LAUNCH_SYNC
    failed: list[str] = []
    for decision in planned:
        try:
            decided = decision.record(store.engine, tenant_id, config.decided_by)
        except DecisionError as exc:
            failed.append(terminal_text(f"{decision.what}: {exc}"))
            context.log.error(f"not recorded: {failed[-1]}")
        else:
            context.log.info(decision_text(decision.action, decided, then))
    if not planned:
        context.log.info(terminal_text(f"{context.partition_key}: nothing recorded, every decision says wait"))
    if failed:
        raise dg.Failure(description=f"{len(failed)} of {len(planned)} decisions could not be recorded (the others "
                                     f"were): {'; '.join(failed)}. Fix them and launch the tenant's review again.")


@dg.job(name="review_matches", config=dg.PartitionedConfig(partitions_def=TENANTS,
                                                           run_config_for_partition_key_fn=prefilled_config),
        description="Review a tenant's matches: pick its partition, and the config opens with what is open for it "
                    "(its organization decision, its held users); edit or delete lines, then launch.")
def review_matches() -> None:
    review_tenant()


# ---------------------------------------------------------------------------- sync_now


def sync_asked(run: dg.DagsterRun) -> bool:
    """Whether the run's config says sync_now: true."""
    ops = run.run_config.get("ops")
    config = ops.get(OP, {}).get("config", {}) if isinstance(ops, Mapping) else {}
    return isinstance(config, Mapping) and config.get("sync_now") is True


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[review_matches],
                      request_job=sync_job, default_status=dg.DefaultSensorStatus.RUNNING,
                      description="After a review_matches run with sync_now: true succeeds, sync its tenant.")
def sync_after_review(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    if not sync_asked(run) or PARTITION_TAG not in run.tags:
        return dg.SkipReason(f"run {run.run_id} did not ask for a sync (sync_now: false)")
    return dg.RunRequest(run_key=run.run_id, partition_key=run.tags[PARTITION_TAG])
