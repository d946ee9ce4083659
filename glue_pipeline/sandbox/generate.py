"""Generate a sandbox world from a seed: customer tenants with users, licenses, mailboxes and
Intune managed devices, plus the documentation store's starting organizations, contacts and
configurations.

The same seed and reference date always yield the same world: its times count back from the
reference date (by default the day of generation, which the world records), never from the moment
of each draw. The mess is deliberate: accented and hyphenated names, several UPN formats, alias
domains, guests, disabled and unlicensed users, shared mailboxes, concealed reports, revoked
consent, store organizations whose names differ in case and spacing, and contacts filed under
another email format for the same person. Devices bring their own: white-box PCs with placeholder
serials, shared devices without a primary user, personal phones that hide their serial, users who
have left, machines enrolled again under a new Intune id (sometimes still listed under the old one
too), and configurations documented under another name or with the serial typed another way.

Options beyond the original generator (`direct`, `spread="longtail"`, devices) draw from their own
random streams derived from the seed, so the default arguments keep producing exactly the world
they always produced.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import math
import random
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, NamedTuple, TypeVar

from .world import (
    DEFAULT_ROLES,
    FIRST_REFERENCE_DATE,
    App,
    AssignedLicense,
    ContactEmail,
    ContactPhone,
    DirectApp,
    Domain,
    Mailbox,
    ManagedDevice,
    Partner,
    SignInActivity,
    Sku,
    StoreConfiguration,
    StoreConfigurationLink,
    StoreContact,
    StoreOrganization,
    StoreSeed,
    Tenant,
    User,
    World,
)

_T = TypeVar("_T")
GENERATED_ROLES = [*DEFAULT_ROLES, "AuditLog.Read.All"]
GIB = 1024**3


@dataclass(frozen=True)
class SkuSpec:
    part_number: str
    sku_id: str
    exchange: bool
    tier: str  # business | enterprise | exchange | free
    mailbox_gb: int = 50


SKU_CATALOG: dict[str, SkuSpec] = {
    s.part_number: s
    for s in [
        SkuSpec("O365_BUSINESS_ESSENTIALS", "3b555118-da6a-4418-894f-7df1e2096870", True, "business"),
        SkuSpec("O365_BUSINESS_PREMIUM", "f245ecc8-75af-4f8e-b61f-27d8114de5f3", True, "business"),
        SkuSpec("SPB", "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", True, "business"),
        SkuSpec("EXCHANGESTANDARD", "4b9405b0-7788-4568-add1-99614e613b69", True, "exchange"),
        SkuSpec("ENTERPRISEPACK", "6fd2c87f-b296-42f0-b197-1e91e994b900", True, "enterprise", 100),
        SkuSpec("SPE_E3", "05e9a617-0261-4cee-bb44-138d3ef5d965", True, "enterprise", 100),
        SkuSpec("SPE_E5", "06ebc4ee-1bb5-47dd-8120-11324bc54e06", True, "enterprise", 100),
        SkuSpec("FLOW_FREE", "f30db892-07e9-47e9-837c-80727f46fd3d", False, "free"),
        SkuSpec("POWER_BI_STANDARD", "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", False, "free"),
    ]
}
FREE_SKU_UNITS = {"FLOW_FREE": 10000, "POWER_BI_STANDARD": 1000000}
BUSINESS_SEAT_LIMIT = 300  # Microsoft 365 Business plans stop at 300 seats

COMPANY_NAMES = [
    "Contoso", "Fabrikam", "Northwind Traders", "Tailspin Toys", "Adatum", "Litware",
    "Proseware", "Woodgrove Bank", "Alpine Ski House", "Coho Winery", "Wingtip Toys",
    "Lamna Healthcare", "Trey Research", "Blue Yonder Airlines", "Humongous Insurance",
    "Margie's Travel", "Fourth Coffee", "Lucerne Publishing", "Graphic Design Institute",
    "Relecloud", "VanArsdel", "Wide World Importers", "Southridge Video",
    "Consolidated Messenger", "City Power & Light", "Best For You Organics", "Bellows College",
    "First Up Consultants", "School of Fine Art", "Munson's Pickles and Preserves",
    "Nod Publishers", "Liberty's Delightful Sinful Bakery & Cafe", "Fincher Architects",
]
LEGAL_SUFFIXES = ["Ltd", "Inc", "LLC", "GmbH", "Pty Ltd", "Corp", "Limited", "AG"]
SECTORS = ["Consulting", "Logistics", "Dental", "Engineering", "Legal", "Medical", "Partners",
           "Foods", "Studios", "Capital", "Holdings", "Group"]
EXTRA_ORGANIZATIONS = ["Acme Plumbing", "Old Mill Bakery", "Riverside Dental Clinic",
                       "Summit Accounting", "Harbor Freight Brokers", "Greenleaf Landscaping",
                       "Pinecrest Veterinary", "Bluewater Marine Supply"]

FIRST_NAMES = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Margaret", "Steven",
    "Sandra", "Andrew", "Ashley", "Paul", "Emily", "Kevin", "Michelle", "Olivia", "Liam", "Ava",
    "Ethan", "Mia", "Lucas", "Amelia", "Oliver", "Isla", "Jack", "Harper", "Leo", "Freya",
    "José", "Zoë", "Chloé", "Renée", "Björn", "Søren", "Siobhán", "Łukasz", "François", "Jürgen",
    "Ana", "María", "Wei", "Priya", "Aarav", "Yuki", "Mohammed", "Fatima", "Olga", "Seán",
    "Inês", "Mateo", "Noa", "Nikolai", "Dagný", "Mary-Jane", "Jean-Luc", "Anne-Marie",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen",
    "King", "Wright", "Scott", "Nguyen", "Hill", "Green", "Adams", "Baker", "Nelson", "Campbell",
    "O'Brien", "O'Connor", "D'Angelo", "Ødegaard", "Müller", "Schröder", "García", "Núñez", "Peña",
    "Kowalczyk", "Łukasiewicz", "van der Berg", "de la Cruz", "MacDonald", "McAllister",
    "Smith-Jones", "Lloyd-Davies", "Nakamura", "Kim", "Patel", "Singh", "Chen", "Wang", "Novak",
    "Dvořák", "Johansson", "Lindqvist", "Björk", "Costa", "Rossi", "Dubois", "Lefèvre", "Horváth",
]
JOB_TITLES = [
    "Accountant", "Office Manager", "Sales Representative", "Account Manager", "IT Manager",
    "Operations Director", "Marketing Coordinator", "Receptionist", "CEO", "CFO",
    "Project Manager", "Software Engineer", "HR Generalist", "Warehouse Supervisor",
    "Customer Service Agent", "Practice Manager", "Paralegal", "Dental Hygienist",
    "Financial Controller", "Business Analyst", "Graphic Designer", "sales rep", "Director",
]
SHARED_MAILBOXES = ["Reception", "Accounts Payable", "Info", "Sales", "Support", "Scanner",
                    "Meeting Room 1", "Boardroom", "Careers", "No Reply"]
GUEST_DOMAINS = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com"]
STREET_NAMES = ["Main Street", "High Street", "Market Street", "Harbour Road", "King Street",
                "Station Road", "Elm Avenue", "Collins Street", "Queen Street", "Lakeview Drive",
                "Industrial Way", "Church Lane"]
OFFICE_LOCATIONS = ["Head Office", "Level 3", "Building 2", "Remote", "Warehouse", "Suite 400"]
SECRET_ALPHABET = string.ascii_letters + string.digits + "~._-"


@dataclass(frozen=True)
class Place:
    city: str
    state: str | None
    postal_code: str
    country: str
    phone_prefix: str
    alias_tld: str
    language: str


PLACES = [
    Place("Seattle", "WA", "98101", "US", "+1 206 555 ", ".net", "en-US"),
    Place("Redmond", "WA", "98052", "US", "+1 425 555 ", ".net", "en-US"),
    Place("Austin", "TX", "78701", "US", "+1 512 555 ", ".us", "en-US"),
    Place("Boston", "MA", "02108", "US", "+1 617 555 ", ".net", "en-US"),
    Place("Toronto", "ON", "M5H 2N2", "CA", "+1 416 555 ", ".ca", "en-CA"),
    Place("London", None, "EC1A 1BB", "GB", "+44 20 7946 ", ".co.uk", "en-GB"),
    Place("Manchester", None, "M1 1AE", "GB", "+44 161 496 ", ".co.uk", "en-GB"),
    Place("Dublin", None, "D02 X285", "IE", "+353 1 555 ", ".ie", "en-IE"),
    Place("Sydney", "NSW", "2000", "AU", "+61 2 5550 ", ".com.au", "en-AU"),
    Place("Melbourne", "VIC", "3000", "AU", "+61 3 5550 ", ".com.au", "en-AU"),
    Place("Auckland", None, "1010", "NZ", "+64 9 555 ", ".co.nz", "en-NZ"),
    Place("München", "BY", "80331", "DE", "+49 89 5550 ", ".de", "de-DE"),
]

# Letters NFKD does not decompose into an ASCII base letter.
_FOLD = str.maketrans({"ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "đ": "d",
                       "Đ": "D", "ł": "l", "Ł": "L", "œ": "oe", "Œ": "OE", "þ": "th"})


@lru_cache(maxsize=65536)
def ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).encode("ascii", "ignore").decode()


@lru_cache(maxsize=65536)
def email_local(text: str) -> str:
    """Lower-case ASCII mailbox name: keeps letters, digits, dots and hyphens."""
    folded = ascii_fold(text).lower()
    return "".join(c for c in folded if c.isalnum() or c in ".-").strip(".-")


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _guid(rng: random.Random) -> str:
    """str(uuid.UUID(int=rng.getrandbits(128), version=4)), without the UUID object."""
    n = (rng.getrandbits(128) & ~(0xC000 << 48) | 0x8000 << 48) & ~(0xF000 << 64) | 4 << 76
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _phone(rng: random.Random, place: Place) -> str:
    return f"{place.phone_prefix}{rng.randint(0, 9999):04d}"


def generation_day() -> datetime:
    """The default reference date: the start of today (UTC), so that a seed gives the same world
    all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# Moments are whole epoch seconds while users are built: the same values as the datetimes
# (reference - timedelta(days=x)).replace(microsecond=0), several times cheaper.
_EPOCH = datetime(1970, 1, 1)


def _seconds_before(rng: random.Random, reference: int, low: float, high: float, not_before: int | None = None) -> int:
    """A moment between low and high days before reference, not before not_before."""
    back = timedelta(days=rng.uniform(low, high))
    moment = reference - back.days * 86400 - back.seconds - (1 if back.microseconds else 0)
    return moment if not_before is None else max(moment, not_before)


@lru_cache(maxsize=16384)
def _date_text(day: int) -> str:
    """YYYY-MM-DD of a day counted from 1970-01-01."""
    return (_EPOCH + timedelta(days=day)).date().isoformat()


def _iso_seconds(moment: int) -> str:
    """A moment in epoch seconds as iso_z writes it: YYYY-MM-DDTHH:MM:SSZ."""
    day, rest = divmod(moment, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{_date_text(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def _unique(taken: set[str], base: str, fmt: str = "{}") -> str:
    """First of base, base2, base3, ... whose formatted form is not taken; claims it."""
    candidate, n = base, 1
    while fmt.format(candidate).lower() in taken:
        n += 1
        candidate = f"{base}{n}"
    taken.add(fmt.format(candidate).lower())
    return candidate


# --------------------------------------------------------------------------- tenants


def _company_name(rng: random.Random, index: int, bases: list[str], taken: set[str]) -> str:
    base = bases[index % len(bases)]
    for attempt in range(50):
        parts = [base]
        if index >= len(bases) or attempt:  # a base used before needs a sector to stay distinct
            parts.append(rng.choice(SECTORS))
        if rng.random() < 0.35:
            parts.append(rng.choice(LEGAL_SUFFIXES))
        name = " ".join(parts)
        if name.lower() not in taken:
            taken.add(name.lower())
            return name
    name = f"{base} {index}"
    taken.add(name.lower())
    return name


def _slug(name: str, taken: set[str]) -> str:
    words = name.split()
    while len(words) > 1 and words[-1] in {w for s in LEGAL_SUFFIXES for w in s.split()}:
        words.pop()
    for candidate in (" ".join(words), name):
        slug = "".join(c for c in ascii_fold(candidate).lower() if c.isalnum())[:27]
        if slug not in taken:
            taken.add(slug)
            return slug
    return _unique(taken, slug[:24])


def _domains(rng: random.Random, slug: str, place: Place) -> tuple[list[Domain], str | None]:
    domains = [Domain(name=f"{slug}.onmicrosoft.com", is_initial=True),
               Domain(name=f"{slug}.com", is_default=True)]
    alias = f"{slug}{place.alias_tld}" if rng.random() < 0.35 else None
    if alias:
        domains.append(Domain(name=alias))
    return domains, alias


Spread = Literal["lognormal", "longtail"]
# sigma of the lognormal tenant-size weights: "longtail" has more one-person tenants and more
# giants (1,000 tenants x 100 users on average: median near 30, a few tenants above 2,000).
SPREAD_SIGMA: dict[str, float] = {"lognormal": 1.2, "longtail": 1.6}


def _spread(rng: random.Random, total: int, parts: int, sigma: float = 1.2) -> list[int]:
    """Long-tailed split of total into parts, each at least 1, summing exactly to total."""
    weights = [rng.lognormvariate(0.0, sigma) for _ in range(parts)]
    scale = (total - parts) / sum(weights)
    shares = [w * scale for w in weights]
    counts = [1 + int(s) for s in shares]
    by_remainder = sorted(range(parts), key=lambda i: (shares[i] - int(shares[i]), -i), reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


@dataclass
class _TenantPlan:
    """What users of one tenant are generated against (`reference`: the world's reference date in
    epoch seconds)."""

    reference: int
    name: str
    default_domain: str
    initial_domain: str
    alias_domain: str | None
    place: Place
    main_skus: list[SkuSpec]
    addon_skus: list[SkuSpec]
    taken: set[str] = field(default_factory=set)


def _plan_skus(rng: random.Random, user_count: int) -> tuple[list[SkuSpec], list[SkuSpec]]:
    mid_size_on_enterprise = user_count > 80 and rng.random() < 0.4
    tier = "enterprise" if user_count > BUSINESS_SEAT_LIMIT or mid_size_on_enterprise else "business"
    pool = [s for s in SKU_CATALOG.values() if s.tier == tier]
    mains = rng.sample(pool, 2 if rng.random() < 0.35 else 1)
    if tier == "business" and rng.random() < 0.3:
        mains.append(SKU_CATALOG["EXCHANGESTANDARD"])
    addons = [SKU_CATALOG[p] for p, chance in (("FLOW_FREE", 0.4), ("POWER_BI_STANDARD", 0.3))
              if rng.random() < chance]
    return mains, addons


def _build_skus(rng: random.Random, plan: _TenantPlan, users: list[User]) -> list[Sku]:
    consumed = Counter(lic.skuId for u in users for lic in u.assignedLicenses)
    skus = []
    for spec in plan.main_skus + plan.addon_skus:
        used = consumed[spec.sku_id]
        if spec.part_number in FREE_SKU_UNITS:
            enabled = FREE_SKU_UNITS[spec.part_number]
        else:
            enabled = max(1, used + rng.choice([0, 0, 0, 1, 2, 3, 5, 10]))
        status = "Warning" if spec.tier != "free" and rng.random() < 0.08 else "Enabled"
        skus.append(Sku(skuId=spec.sku_id, skuPartNumber=spec.part_number, enabled=enabled,
                        warning=enabled if status == "Warning" else 0, capabilityStatus=status))
    return skus


def _tenant(rng: random.Random, name: str, slug: str, user_count: int, reference: int) -> Tenant:
    place = rng.choice(PLACES)
    tenant_id = _guid(rng)
    domains, alias = _domains(rng, slug, place)
    mains, addons = _plan_skus(rng, user_count)
    plan = _TenantPlan(reference, name, f"{slug}.com", f"{slug}.onmicrosoft.com", alias, place, mains, addons)
    users = [_user(rng, plan, first=(i == 0)) for i in range(user_count)]
    return Tenant(
        id=tenant_id,
        display_name=name,
        domains=domains,
        relationship=rng.choices(["dap", "gdap", "both"], weights=[2, 4, 4])[0],
        roles=list(GENERATED_ROLES),
        reports_concealed=rng.random() < 0.25,
        street=f"{rng.randint(1, 999)} {rng.choice(STREET_NAMES)}",
        city=place.city,
        state=place.state,
        postal_code=place.postal_code,
        country_letter_code=place.country,
        phone=_phone(rng, place),
        users=users,
        skus=_build_skus(rng, plan, users),
    )


# --------------------------------------------------------------------------- users


def _user(rng: random.Random, plan: _TenantPlan, first: bool) -> User:
    if first:  # every tenant has at least its licensed admin
        return _member(rng, plan, enabled=True, licensed=True)
    roll = rng.random()
    if roll < 0.05:
        return _guest(rng, plan)
    if roll < 0.08:
        return _shared_mailbox(rng, plan)
    return _member(rng, plan, enabled=rng.random() >= 0.025, licensed=rng.random() >= 0.11)


def _upn_local(rng: random.Random, first: str, last: str, taken: set[str], domain: str) -> str:
    given, family = email_local(first), email_local(last.replace(" ", ""))
    roll = rng.random()
    base = f"{given[0]}{family}" if roll < 0.12 else given if roll < 0.15 else f"{given}.{family}"
    return _unique(taken, base, "{}@" + domain)


def _display_name(rng: random.Random, first: str, last: str) -> str:
    roll = rng.random()
    if roll < 0.05:
        return f"{last}, {first}"
    if roll < 0.09:
        return f"{first} {last} ({rng.choice(['Sales', 'Admin', 'Finance', 'Ops'])})"
    return f"{first} {last}"


def _sign_in(rng: random.Random, reference: int, created: int, enabled: bool) -> SignInActivity:
    roll = rng.random()
    if roll < 0.05:
        return SignInActivity()  # never signed in
    low, high = (0, 14) if enabled and roll >= 0.2 else (15, 400)
    last = _seconds_before(rng, reference, low, high, created)
    later = timedelta(hours=rng.uniform(0, 48))
    non_interactive = min(reference, last + later.days * 86400 + later.seconds)
    last_text = _iso_seconds(last)
    return SignInActivity(lastSignInDateTime=last_text,
                          lastNonInteractiveSignInDateTime=_iso_seconds(non_interactive),
                          lastSuccessfulSignInDateTime=last_text)


def _licenses(rng: random.Random, plan: _TenantPlan) -> list[SkuSpec]:
    weights = [0.75] + [0.25 / max(1, len(plan.main_skus) - 1)] * (len(plan.main_skus) - 1)
    chosen = [rng.choices(plan.main_skus, weights=weights)[0]]
    chosen += [s for s in plan.addon_skus if rng.random() < 0.2]
    return chosen


def _mailbox(rng: random.Random, reference: int, created: int, enabled: bool, quota_gb: int,
             recipient_type: str = "User") -> Mailbox:
    quota = quota_gb * GIB
    storage = int(quota * min(0.995, rng.lognormvariate(math.log(0.04), 1.1)))
    items = int(storage / rng.uniform(40_000, 120_000))
    deleted = int(items * rng.uniform(0, 0.1))
    if rng.random() < 0.03:
        last_activity = None
    else:
        last_activity = _date_text(_seconds_before(rng, reference, 0, 10 if enabled else 300, created) // 86400)
    quotas = {}
    if quota_gb != 50:
        quotas = dict(issue_warning_quota_bytes=(quota_gb - 2) * GIB,
                      prohibit_send_quota_bytes=(quota_gb - 1) * GIB,
                      prohibit_send_receive_quota_bytes=quota)
    return Mailbox(storage_used_bytes=storage, item_count=items, last_activity_date=last_activity,
                   deleted_item_count=deleted, deleted_item_size_bytes=int(deleted * storage / max(1, items)),
                   has_archive=rng.random() < 0.12, created_date=_date_text(created // 86400),
                   recipient_type=recipient_type, **quotas)


def _proxy_addresses(local: str, mail: str, upn: str, plan: _TenantPlan) -> list[str]:
    aliases = [upn, f"{local}@{plan.initial_domain}"]
    if plan.alias_domain:
        aliases.append(f"{local}@{plan.alias_domain}")
    return [f"SMTP:{mail}"] + [f"smtp:{a}" for a in dict.fromkeys(aliases) if a != mail]


def _member(rng: random.Random, plan: _TenantPlan, enabled: bool, licensed: bool) -> User:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = _upn_local(rng, first, last, plan.taken, plan.default_domain)
    upn = f"{local}@{plan.default_domain}"
    created = _seconds_before(rng, plan.reference, 30, 3650)
    skus = _licenses(rng, plan) if licensed else []
    exchange = [s for s in skus if s.exchange]
    mailbox = _mailbox(rng, plan.reference, created, enabled, max(s.mailbox_gb for s in exchange)) \
        if exchange else None
    if mailbox:
        on_alias = plan.alias_domain and rng.random() < 0.15
        mail = f"{local}@{plan.alias_domain}" if on_alias else upn
        proxies = _proxy_addresses(local, mail, upn, plan)
    else:
        mail, proxies = (upn if rng.random() < 0.5 else None), []
    names_missing = rng.random()
    return User(
        id=_guid(rng),
        userPrincipalName=upn,
        displayName=_display_name(rng, first, last),
        givenName=None if names_missing < 0.03 else first,
        surname=None if names_missing < 0.05 else last,
        mail=mail,
        jobTitle=rng.choice(JOB_TITLES) if rng.random() < 0.85 else None,
        businessPhones=[_phone(rng, plan.place)] if rng.random() < 0.75 else [],
        mobilePhone=_phone(rng, plan.place) if rng.random() < 0.5 else None,
        officeLocation=rng.choice([plan.place.city, *OFFICE_LOCATIONS]) if rng.random() < 0.7 else None,
        preferredLanguage=plan.place.language if rng.random() < 0.6 else None,
        accountEnabled=enabled,
        userType="Member",
        proxyAddresses=proxies,
        assignedLicenses=[AssignedLicense(skuId=s.sku_id) for s in skus],
        createdDateTime=_iso_seconds(created),
        lastPasswordChangeDateTime=_iso_seconds(_seconds_before(rng, plan.reference, 0, 400, created)),
        signInActivity=_sign_in(rng, plan.reference, created, enabled),
        mailbox=mailbox,
    )


def _guest(rng: random.Random, plan: _TenantPlan) -> User:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    domain = rng.choice(GUEST_DOMAINS)
    local = _unique(plan.taken, email_local(f"{first}.{last.replace(' ', '')}"), "{}_" + domain + "#EXT#")
    external = f"{local}@{domain}"
    created = _seconds_before(rng, plan.reference, 5, 1500)
    named = rng.random() < 0.5
    return User(
        id=_guid(rng),
        userPrincipalName=f"{local}_{domain}#EXT#@{plan.initial_domain}",
        displayName=f"{first} {last}" if named else external,
        givenName=first if named else None,
        surname=last if named else None,
        mail=external,
        accountEnabled=True,
        userType="Guest",
        proxyAddresses=[f"SMTP:{external}"],
        createdDateTime=_iso_seconds(created),
        lastPasswordChangeDateTime=_iso_seconds(created),
        signInActivity=_sign_in(rng, plan.reference, created, enabled=rng.random() < 0.5),
    )


def _shared_mailbox(rng: random.Random, plan: _TenantPlan) -> User:
    """A shared mailbox: a disabled, unlicensed account that still has a mailbox."""
    name = rng.choice(SHARED_MAILBOXES)
    local = _unique(plan.taken, email_local(name.replace(" ", "")), "{}@" + plan.default_domain)
    upn = f"{local}@{plan.default_domain}"
    created = _seconds_before(rng, plan.reference, 30, 3650)
    return User(
        id=_guid(rng),
        userPrincipalName=upn,
        displayName=name,
        mail=upn,
        accountEnabled=False,
        userType="Member",
        proxyAddresses=_proxy_addresses(local, upn, upn, plan),
        createdDateTime=_iso_seconds(created),
        lastPasswordChangeDateTime=_iso_seconds(created),
        signInActivity=SignInActivity(),
        mailbox=_mailbox(rng, plan.reference, created, True, 50, recipient_type="Shared"),
    )


# --------------------------------------------------------------------------- store seed


def _name_variant(rng: random.Random, name: str) -> str:
    """The tenant name as someone typed it into the store: same up to case and spaces."""
    roll = rng.random()
    if roll < 0.7:
        return name
    variants = [
        lambda n: f"  {n.lower()} ",
        lambda n: n.upper(),
        lambda n: "  ".join(n.split()),
        lambda n: " ".join(w.capitalize() if i % 2 else w.lower() for i, w in enumerate(n.split())) + " ",
    ]
    return rng.choice(variants)(name)


def _alternate_email(user: User, domain: str, in_use: set[str]) -> str | None:
    """The same person under another email format (john.smith@ vs jsmith@), if free."""
    if not (user.givenName and user.surname):
        return None
    first, last = email_local(user.givenName), email_local(user.surname.replace(" ", ""))
    local = user.userPrincipalName.split("@")[0]
    other = f"{first[0]}{last}" if local.startswith(f"{first}.") else f"{first}.{last}"
    address = f"{other}@{domain}"
    return None if address.lower() in in_use else address


def _contact_for(rng: random.Random, user: User, tenant: Tenant, org_id: int, contact_id: int,
                 in_use: set[str]) -> StoreContact:
    email = user.userPrincipalName
    if rng.random() < 0.12:
        email = _alternate_email(user, tenant.default_domain, in_use) or email
    phones = [ContactPhone(value=p, label="Work", primary=i == 0) for i, p in enumerate(user.businessPhones)]
    if user.mobilePhone:
        phones.append(ContactPhone(value=user.mobilePhone, label="Mobile", primary=not phones))
    return StoreContact(id=contact_id, organization_id=org_id, first_name=user.givenName,
                        last_name=user.surname, title=user.jobTitle,
                        emails=[ContactEmail(value=email, label="Work", primary=True)], phones=phones)


def _former_employee(rng: random.Random, domain: str, org_id: int, contact_id: int) -> StoreContact:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{email_local(first)}.{email_local(last.replace(' ', ''))}.old@{domain}"
    return StoreContact(id=contact_id, organization_id=org_id, first_name=first, last_name=last,
                        title=rng.choice(JOB_TITLES),
                        emails=[ContactEmail(value=email, label="Work", primary=True)])


def _store_seed(rng: random.Random, tenants: list[Tenant]) -> tuple[StoreSeed, dict[int, Tenant]]:
    """The store's organizations and contacts, and the tenant each organization stands for."""
    matched = rng.sample(tenants, round(len(tenants) * 0.8))
    extras = rng.sample(EXTRA_ORGANIZATIONS, min(5, len(EXTRA_ORGANIZATIONS)))
    entries: list[tuple[str, Tenant | None]] = [(_name_variant(rng, t.display_name), t) for t in matched]
    entries += [(name, None) for name in extras]
    rng.shuffle(entries)
    organizations, contacts = [], []
    tenant_of: dict[int, Tenant] = {}
    for org_id, (name, tenant) in enumerate(entries, start=1):
        organizations.append(StoreOrganization(id=org_id, name=name))
        domain = tenant.default_domain if tenant else f"{email_local(name.replace(' ', ''))}.com"
        if tenant:
            tenant_of[org_id] = tenant
            in_use = {u.userPrincipalName.lower() for u in tenant.users} | {
                (u.mail or "").lower() for u in tenant.users}
            for user in tenant.users:
                if user.userType == "Member" and user.givenName and rng.random() < 0.3:
                    contacts.append(_contact_for(rng, user, tenant, org_id, len(contacts) + 1, in_use))
        for _ in range(rng.choice([0, 0, 1, 2])):
            contacts.append(_former_employee(rng, domain, org_id, len(contacts) + 1))
    return StoreSeed(organizations=organizations, contacts=contacts), tenant_of


# --------------------------------------------------------------------------- devices

MIB = 1024**2


def _alphabet(letters: str) -> bytes:
    """A bytes.translate table from any byte to one of `letters` (close enough to uniform)."""
    return bytes(ord(letters[i % len(letters)]) for i in range(256))


_SERIAL_ALPHABET = _alphabet(string.digits + string.ascii_uppercase)
_DIGITS = _alphabet(string.digits)
_APPLE_ALPHABET = _alphabet("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ")  # Apple's random serials avoid I and O
# What white-box PCs report as their serial number: the firmware's unfilled template.
PLACEHOLDER_SERIALS = ("To be filled by O.E.M.", "To Be Filled By O.E.M.", "System Serial Number", "Default string",
                       "0", "None", "", "Not Specified", "123456789", "OEM")


def _chars(rng: random.Random, count: int, alphabet: bytes = _SERIAL_ALPHABET) -> str:
    """`count` random characters of an _alphabet (one draw of random bytes: devices are many)."""
    return rng.randbytes(count).translate(alphabet).decode()


def _pick(rng: random.Random, items: Sequence[_T], cum_weights: list[float]) -> _T:
    """rng.choices(items, cum_weights=cum_weights)[0], without building a list."""
    return items[bisect.bisect(cum_weights, rng.random() * cum_weights[-1])]


def _dell_tag(rng: random.Random) -> str:
    return _chars(rng, 7)


def _hp_serial(rng: random.Random) -> str:
    return rng.choice(("5CG", "5CD", "CND", "MXL", "8CG")) + _chars(rng, 4, _DIGITS) + _chars(rng, 3)


def _lenovo_serial(rng: random.Random) -> str:
    return rng.choice(("PF", "PC", "R9", "MP")) + _chars(rng, 6)


def _surface_serial(rng: random.Random) -> str:
    return _chars(rng, 12, _DIGITS)


def _apple_serial(old_prefixes: tuple[str, ...]) -> Callable[[random.Random], str]:
    """Apple's serials: 12 characters with a factory prefix before 2021, 10 random ones since."""
    def serial(rng: random.Random) -> str:
        if rng.random() < 0.4:
            return rng.choice(old_prefixes) + _chars(rng, 9)
        return _chars(rng, 10, _APPLE_ALPHABET)
    return serial


def _samsung_serial(rng: random.Random) -> str:
    return "R5" + _chars(rng, 9)


def _pixel_serial(rng: random.Random) -> str:
    return _chars(rng, 14)


def _hyper_v_serial(rng: random.Random) -> str:
    return "-".join(_chars(rng, 4, _DIGITS) for _ in range(6)) + "-" + _chars(rng, 2, _DIGITS)


def _vmware_serial(rng: random.Random) -> str:
    def octets() -> str:
        return " ".join(f"{b:02x}" for b in rng.randbytes(8))
    return f"VMware-{octets()}-{octets()}"


def _placeholder_serial(rng: random.Random) -> str:
    return rng.choice(PLACEHOLDER_SERIALS)


@dataclass(frozen=True)
class Hardware:
    """A line of devices as Intune reports it: maker, models, the shape of its serial numbers and
    the vendor prefixes (OUIs) of its network adapters."""

    manufacturer: str
    models: tuple[str, ...]
    serial: Callable[[random.Random], str]
    ouis: tuple[str, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class DeviceKind:
    """A kind of device: its operating system, how the store files it, and how often each of its
    properties is there (`weight`: its share of the users' devices)."""

    name: str
    operating_system: str
    os_versions: tuple[str, ...]
    configuration_type: str
    weight: float
    storage_gb: tuple[int, ...]
    wifi: float  # chance of a Wi-Fi MAC address
    ethernet: float  # chance of a wired one (Graph gives it only when one device is read)
    encrypted: float
    cellular: float  # chance of an IMEI
    personal: float  # chance of a personally owned (BYOD) device
    hardware: tuple[Hardware, ...]

    @property
    def windows(self) -> bool:
        return self.operating_system == "Windows"

    @property
    def mobile(self) -> bool:
        return self.operating_system in ("iOS", "iPadOS", "Android")


_INTEL = ("A4C3F0", "8C8D28", "F8E4E3", "7C5CF8", "DC215C", "48A472")
_WIRED = ("00E04C", "D8BBC1", "F8B156", "6C2B59", "E454E8", "A0CEC8")
_APPLE = ("3C22FB", "F01898", "A4835A", "ACBC32", "F4D488")
_SAMSUNG = ("8C7712", "5C497D", "A0CBFD", "E4F8EF")
_MACOS_VERSIONS = ("14.4.1 (23E224)", "13.6.6 (22G630)", "14.6.1 (23G93)", "15.1 (24B83)")
_WINDOWS_VERSIONS = ("10.0.19045.4291", "10.0.19045.3803", "10.0.22631.3527", "10.0.22631.4169",
                     "10.0.22621.3447", "10.0.26100.2033")
_DELL_LAPTOPS = Hardware("Dell Inc.", ("Latitude 5440", "Latitude 7420", "Latitude 5520", "XPS 13 9310",
                                       "Precision 5570", "Vostro 3520"), _dell_tag, _INTEL, 3)
_HP_LAPTOPS = Hardware("HP", ("HP EliteBook 840 G8 Notebook PC", "HP ProBook 450 G9 Notebook PC",
                              "HP EliteBook 850 G7 Notebook PC", "HP ZBook Firefly 14 G8"), _hp_serial, _INTEL, 3)
# Lenovo reports the machine type, not the marketing name.
_LENOVO_LAPTOPS = Hardware("LENOVO", ("20XW004KUS", "21CB0056US", "20U9004DUS", "21HD003AAU"), _lenovo_serial,
                           _INTEL, 2)
_SURFACES = Hardware("Microsoft Corporation", ("Surface Laptop 4", "Surface Pro 8", "Surface Laptop 5",
                                               "Surface Pro 9"), _surface_serial, _INTEL, 1)
WINDOWS_KINDS = (
    DeviceKind("laptop", "Windows", _WINDOWS_VERSIONS, "Laptop", 0.42, (256, 512, 1024), 0.97, 0.3, 0.85, 0.02,
               0.01, (_DELL_LAPTOPS, _HP_LAPTOPS, _LENOVO_LAPTOPS, _SURFACES)),
    DeviceKind("desktop", "Windows", _WINDOWS_VERSIONS, "Workstation", 0.12, (256, 512), 0.15, 1.0, 0.8, 0.0, 0.0, (
        Hardware("Dell Inc.", ("OptiPlex 7090", "OptiPlex 3080", "OptiPlex 7010", "Precision 3660 Tower"),
                 _dell_tag, _WIRED, 3),
        Hardware("HP", ("HP EliteDesk 800 G6 Desktop Mini PC", "HP ProDesk 400 G7 Small Form Factor PC"),
                 _hp_serial, _WIRED, 2),
        Hardware("LENOVO", ("11JN000AUS", "11DT003QUS"), _lenovo_serial, _WIRED, 1))),
    # Self-built PCs whose firmware never got a serial number.
    DeviceKind("whitebox", "Windows", _WINDOWS_VERSIONS, "Workstation", 0.015, (512, 1024), 0.3, 1.0, 0.3, 0.0,
               0.0, (
                   Hardware("System manufacturer", ("System Product Name",), _placeholder_serial, _WIRED),
                   Hardware("To Be Filled By O.E.M.", ("To Be Filled By O.E.M.",), _placeholder_serial, _WIRED),
                   Hardware("Micro-Star International Co., Ltd.", ("MS-7C02", "MS-7D25"), _placeholder_serial,
                            _WIRED),
                   Hardware("Gigabyte Technology Co., Ltd.", ("B550 AORUS ELITE", "B450M DS3H"),
                            _placeholder_serial, _WIRED))),
    DeviceKind("virtual", "Windows", _WINDOWS_VERSIONS, "Virtual Machine", 0.015, (128, 256), 0.0, 1.0, 0.1, 0.0,
               0.0, (
                   Hardware("Microsoft Corporation", ("Virtual Machine",), _hyper_v_serial, ("00155D",), 2),
                   Hardware("VMware, Inc.", ("VMware7,1", "VMware20,1"), _vmware_serial, ("005056",)))),
)
DEVICE_KINDS = (
    *WINDOWS_KINDS,
    DeviceKind("mac", "macOS", _MACOS_VERSIONS, "Laptop", 0.06, (256, 512, 1024), 1.0, 0.1, 0.8, 0.0, 0.02, (
        Hardware("Apple", ("MacBook Pro", "MacBook Air"), _apple_serial(("C02", "C17", "FVF")), _APPLE),)),
    DeviceKind("imac", "macOS", _MACOS_VERSIONS, "Workstation", 0.02, (256, 512), 1.0, 0.6, 0.7, 0.0, 0.0, (
        Hardware("Apple", ("iMac", "Mac mini"), _apple_serial(("C02", "D25", "C07")), _APPLE),)),
    DeviceKind("iphone", "iOS", ("17.4.1", "17.5.1", "16.7.7", "18.1"), "Mobile Device", 0.18, (64, 128, 256),
               0.9, 0.0, 1.0, 1.0, 0.35, (
                   Hardware("Apple", ("iPhone 12", "iPhone 13", "iPhone 14", "iPhone 15 Pro",
                                      "iPhone SE (3rd generation)"), _apple_serial(("F2L", "DNP", "G6T", "F4G")),
                            _APPLE),)),
    DeviceKind("android", "Android", ("14", "13", "12"), "Mobile Device", 0.1, (128, 256), 0.8, 0.0, 0.95, 1.0,
               0.45, (
                   Hardware("samsung", ("SM-S911B", "SM-A546B", "SM-G991B", "SM-S918B"), _samsung_serial,
                            _SAMSUNG, 3),
                   Hardware("Google", ("Pixel 7", "Pixel 8 Pro"), _pixel_serial, ("F4F5E8", "3C286D")),
                   Hardware("motorola", ("moto g(60)",), _pixel_serial, ("9C5A81",), 0.5))),
    DeviceKind("ipad", "iPadOS", ("17.4.1", "16.7.7", "18.1"), "Tablet", 0.05, (64, 256), 1.0, 0.0, 1.0, 0.3,
               0.2, (
                   Hardware("Apple", ("iPad (9th generation)", "iPad Air (5th generation)",
                                      "iPad Pro (11-inch) (4th generation)"), _apple_serial(("DMP", "F9F", "GG7")),
                            _APPLE),)),
    DeviceKind("android_tablet", "Android", ("14", "13"), "Tablet", 0.02, (32, 64), 1.0, 0.0, 0.95, 0.2, 0.3, (
        Hardware("samsung", ("SM-X200", "SM-T505"), _samsung_serial, _SAMSUNG),)),
)
REENROLLED_KINDS = ("laptop", "desktop", "mac", "imac")  # machines that get wiped and enrolled again
_KIND_WEIGHTS = list(itertools.accumulate(k.weight for k in DEVICE_KINDS))
_KINDS = {k.name: k for k in DEVICE_KINDS}
_HARDWARE_WEIGHTS = {k.name: list(itertools.accumulate(h.weight for h in k.hardware)) for k in DEVICE_KINDS}
# Marketing names of the Android models, as people call their phones.
ANDROID_NAMES = {"SM-S911B": "Galaxy S23", "SM-A546B": "Galaxy A54", "SM-G991B": "Galaxy S21",
                 "SM-S918B": "Galaxy S23 Ultra", "SM-X200": "Galaxy Tab A8", "SM-T505": "Galaxy Tab A7"}
COMPLIANCE_STATES = ("compliant", "noncompliant", "inGracePeriod", "unknown", "error", "conflict")
_COMPLIANCE_WEIGHTS = list(itertools.accumulate((76, 11, 3, 6, 2, 2)))
MEETING_ROOMS = ("Reception", "Boardroom", "Training Room", "Warehouse", "Front Desk", "Kitchen")


class _Owner(NamedTuple):
    """A device's primary user, as the device records them."""

    id: str
    upn: str
    display_name: str
    first_name: str

    @classmethod
    def of(cls, user: User) -> _Owner:
        first = user.givenName or (user.displayName or "").split(" ")[0] or user.userPrincipalName.split("@")[0]
        return cls(user.id, user.userPrincipalName, user.displayName or "", first)


@dataclass
class _Fleet:
    """One tenant's devices while they are generated: its naming habit ("default" names as
    Windows makes them, "asset" numbers, or "serial" numbers as Autopilot names them), the counters
    of its asset numbers, and which devices were enrolled again under a new Intune id."""

    tenant: Tenant
    reference: int
    prefix: str
    naming: str
    counters: Counter[str] = field(default_factory=Counter)
    departed: list[_Owner] = field(default_factory=list)
    upns: set[str] = field(default_factory=set)  # of users and departed owners, once one has departed
    devices: list[ManagedDevice] = field(default_factory=list)
    kinds: dict[str, tuple[DeviceKind, Hardware]] = field(default_factory=dict)
    reenrolled: dict[str, str] = field(default_factory=dict)  # device id -> its former Intune id
    stale: set[str] = field(default_factory=set)  # former ids still listed beside the new record


def _asset_prefix(tenant: Tenant) -> str:
    word = ascii_fold(tenant.display_name.split(" ")[0]).upper()
    return "".join(c for c in word if c.isalnum())[:7] or "PC"


def _intune_name(owner: _Owner, platform: str, age: int) -> str:
    """The name Intune gives a device it enrols: user, platform and time, jdoe_iPhone_6/14/2023_3:07 PM.

    The time is `age` seconds before world.FIRST_REFERENCE_DATE, not before the world's reference
    date: a name is no date that `redated` moves, so a seed names its devices alike at any reference."""
    at = FIRST_REFERENCE_DATE - timedelta(seconds=age)
    stamp = f"{at.month}/{at.day}/{at.year}_{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"
    return f"{owner.upn.split('@')[0]}_{platform}_{stamp}"


def _windows_name(rng: random.Random, fleet: _Fleet, kind: DeviceKind, serial: str, shared: bool) -> str:
    if shared:
        fleet.counters["shared"] += 1
        number = fleet.counters["shared"]
        return rng.choice((f"{fleet.prefix}-KIOSK-{number:02d}", f"{fleet.prefix}-SHARED-{number:02d}",
                           f"MEETINGROOM-{number}", f"{fleet.prefix}-RECEPTION"))
    naming = fleet.naming if rng.random() < 0.85 else "default"  # some machines were never renamed
    if naming == "asset":
        code = {"laptop": "LT", "virtual": "VM"}.get(kind.name, "DT")
        fleet.counters[code] += rng.choice((1, 1, 1, 2, 3))
        return f"{fleet.prefix}-{code}-{fleet.counters[code]:03d}"
    if naming == "serial" and len(serial) >= 6 and serial not in PLACEHOLDER_SERIALS:
        return f"{fleet.prefix[:3]}-{serial}"[:15]  # NetBIOS names stop at 15 characters
    return "DESKTOP-" + _chars(rng, 7)


def _personal_name(rng: random.Random, kind: DeviceKind, model: str, owner: _Owner, personal: bool,
                   age: int) -> str:
    """A phone, tablet or Mac named as its owner or Intune named it (`age`: seconds since enrolment)."""
    first, roll = owner.first_name, rng.random()
    if kind.operating_system == "macOS":
        host = model.replace(" ", "-")
        if roll < 0.5:
            return f"{first}\u2019s {model}"
        return f"{ascii_fold(first)}s-{host}" if roll < 0.8 else f"{host}-{rng.randint(2, 9)}"
    if kind.operating_system == "Android":
        marketing = ANDROID_NAMES.get(model, model)
        if roll < 0.55:
            return _intune_name(owner, "AndroidForWork" if personal else "AndroidEnterprise", age)
        return marketing if roll < 0.8 else f"{first}'s {marketing}"
    product = "iPhone" if kind.name == "iphone" else "iPad"
    if roll < 0.45:
        return f"{first}\u2019s {product}"  # what iOS names it, with its curly apostrophe
    if roll < 0.6:
        return f"{first}'s {product}"
    if roll < 0.7:
        return product
    return _intune_name(owner, "iPhone" if kind.name == "iphone" else "IPad", age)


def _luhn_digit(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10


def _imei(rng: random.Random, spaced: bool) -> str:
    """15 digits with their check digit; Intune spaces an iPhone's as 35 398709 123456 4."""
    body = "35" + _chars(rng, 12, _DIGITS)
    digits = f"{body}{_luhn_digit(body)}"
    return f"{digits[:2]} {digits[2:8]} {digits[8:14]} {digits[14]}" if spaced else digits


def _mac(rng: random.Random, hardware: Hardware) -> str:
    return f"{rng.choice(hardware.ouis)}{rng.getrandbits(24):06X}"


def _departed(rng: random.Random, fleet: _Fleet) -> _Owner:
    """A former employee still recorded as a device's user: gone from the tenant's users."""
    if fleet.departed and rng.random() < 0.6:
        return rng.choice(fleet.departed)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    if not fleet.upns:
        fleet.upns.update(u.userPrincipalName.lower() for u in fleet.tenant.users)
    local = _unique(fleet.upns, f"{email_local(first)}.{email_local(last.replace(' ', ''))}",
                    "{}@" + fleet.tenant.default_domain)
    owner = _Owner(_guid(rng), f"{local}@{fleet.tenant.default_domain}", f"{first} {last}", first)
    fleet.departed.append(owner)
    return owner


def _device(rng: random.Random, fleet: _Fleet, kind: DeviceKind, owner: _Owner | None, enrolled: int,
            last_sync: int) -> ManagedDevice:
    hardware = _pick(rng, kind.hardware, _HARDWARE_WEIGHTS[kind.name])
    model = rng.choice(hardware.models)
    personal = owner is not None and rng.random() < kind.personal
    serial = hardware.serial(rng)
    # Privacy: a personal Android work profile reports no serial or IMEI, nor does iOS user enrolment.
    hidden = personal and kind.mobile and (kind.operating_system == "Android" or rng.random() < 0.5)
    if hidden:
        serial = ""
    if kind.windows:
        name = _windows_name(rng, fleet, kind, serial, shared=owner is None)
    elif owner is None:
        name = f"{kind.configuration_type}-{rng.choice(MEETING_ROOMS).replace(' ', '')}"
    else:
        name = _personal_name(rng, kind, model, owner, personal, fleet.reference - enrolled)
    total = int(rng.choice(kind.storage_gb) * 1e9 * rng.uniform(0.92, 0.97)) // MIB * MIB
    co_managed = kind.windows and rng.random() < 0.12
    compliance = "configManager" if co_managed and rng.random() < 0.3 else \
        _pick(rng, COMPLIANCE_STATES, _COMPLIANCE_WEIGHTS)
    device = ManagedDevice(
        id=_guid(rng),
        deviceName=name,
        serialNumber=serial,
        manufacturer=hardware.manufacturer,
        model=model,
        operatingSystem=kind.operating_system,
        osVersion=rng.choice(kind.os_versions),
        complianceState=compliance,
        managedDeviceOwnerType="personal" if personal else "unknown" if rng.random() < 0.01 else "company",
        managementAgent="configurationManagerClientMdm" if co_managed else "mdm",
        enrolledDateTime=_iso_seconds(enrolled),
        lastSyncDateTime=_iso_seconds(last_sync),
        userId=owner.id if owner else "",
        userPrincipalName=owner.upn if owner else "",
        userDisplayName=owner.display_name if owner else "",
        emailAddress=owner.upn if owner else "",
        azureADDeviceId=_guid(rng),
        wiFiMacAddress=_mac(rng, hardware) if not hidden and rng.random() < kind.wifi else "",
        ethernetMacAddress=_mac(rng, hardware) if rng.random() < kind.ethernet else None,
        imei=_imei(rng, spaced=kind.operating_system != "Android")
        if not hidden and rng.random() < kind.cellular else "",
        isEncrypted=rng.random() < kind.encrypted,
        totalStorageSpaceInBytes=total,
        freeStorageSpaceInBytes=int(total * rng.uniform(0.05, 0.8)),
    )
    fleet.kinds[device.id] = (kind, hardware)
    return device


def _last_sync(rng: random.Random, reference: int, enrolled: int) -> int:
    roll = rng.random()
    low, high = (0, 3) if roll < 0.88 else (4, 60) if roll < 0.97 else (61, 365)
    return _seconds_before(rng, reference, low, high, enrolled)


def _reenrol(rng: random.Random, fleet: _Fleet, kind: DeviceKind, owner: _Owner, reference: int) -> None:
    """A machine wiped and enrolled again: Intune lists it under a new id; sometimes the old record,
    silent since before the re-enrolment, is still there too (listed first)."""
    enrolled = _seconds_before(rng, reference, 20, 200)
    device = _device(rng, fleet, kind, owner, enrolled, _last_sync(rng, reference, enrolled))
    former_id = _guid(rng)
    fleet.reenrolled[device.id] = former_id
    if rng.random() < 0.4:
        stale_sync = _seconds_before(rng, enrolled, 1, 30)
        name = device.deviceName if rng.random() < 0.5 else "DESKTOP-" + _chars(rng, 7)
        fleet.devices.append(device.model_copy(update={
            "id": former_id, "deviceName": name, "azureADDeviceId": _guid(rng),
            "enrolledDateTime": _iso_seconds(_seconds_before(rng, stale_sync, 200, 1200)),
            "lastSyncDateTime": _iso_seconds(stale_sync)}))
        fleet.kinds[former_id] = fleet.kinds[device.id]
        fleet.stale.add(former_id)
    fleet.devices.append(device)


def _fleet(rng: random.Random, tenant: Tenant, reference: int, devices_per_user: float) -> _Fleet:
    """About devices_per_user devices per user: most have a member as primary user, a few are
    shared (no primary user) and a few still name a user who has left."""
    fleet = _Fleet(tenant, reference, _asset_prefix(tenant), rng.choice(("default", "default", "asset", "serial")))
    owners = [u for u in tenant.users
              if u.userType == "Member" and not (u.mailbox and u.mailbox.recipient_type == "Shared")]
    for _ in range(int(len(tenant.users) * devices_per_user + rng.random())):
        roll = rng.random()
        owner: _Owner | None = None
        if roll < 0.04 or not owners:
            kind = _KINDS["desktop" if rng.random() < 0.8 else "ipad"]
        else:
            owner = _departed(rng, fleet) if roll < 0.07 else _Owner.of(rng.choice(owners))
            kind = _pick(rng, DEVICE_KINDS, _KIND_WEIGHTS)
            if kind.name in REENROLLED_KINDS and rng.random() < 0.02:
                _reenrol(rng, fleet, kind, owner, reference)
                continue
        enrolled = _seconds_before(rng, reference, 3, 1500)
        fleet.devices.append(_device(rng, fleet, kind, owner, enrolled, _last_sync(rng, reference, enrolled)))
    tenant.devices = fleet.devices
    return fleet


def _without_intune(seed: int, tenants: list[Tenant]) -> None:
    """A tenth of the tenants (of worlds with ten or more) hold no Intune licence."""
    if len(tenants) >= 10:
        for tenant in random.Random(f"{seed}:intune").sample(tenants, len(tenants) // 10):
            tenant.intune = False


# --------------------------------------------------------------------------- device documentation

# Kit the store documents that Intune never manages: (type, manufacturer, model, serial, OS, name).
UNMANAGED_KIT: tuple[tuple[str, str, str, Callable[[random.Random], str], str | None, str], ...] = (
    ("Server", "Dell Inc.", "PowerEdge R740", _dell_tag, "Windows Server 2019 Standard", "SRV-DC01"),
    ("Server", "HPE", "ProLiant DL380 Gen10", lambda rng: "CZJ" + _chars(rng, 7), "Windows Server 2022 Standard",
     "SRV-FS01"),
    ("Printer", "HP", "HP LaserJet Pro M404dn", lambda rng: "VNB" + _chars(rng, 7), None, "PRN-RECEPTION"),
    ("Firewall", "Fortinet", "FortiGate 60F", lambda rng: "FGT60FTK" + _chars(rng, 8, _DIGITS), "FortiOS 7.2",
     "FW01"),
    ("Switch", "Cisco", "CBS350-24P-4G", lambda rng: "PSZ" + _chars(rng, 8), None, "SW-CORE"),
    ("NAS", "Synology", "DS920+", lambda rng: "20" + _chars(rng, 11), "DSM 7.2", "NAS01"),
)
# How people write a maker's name.
FRIENDLY_MANUFACTURERS = {"Dell Inc.": "Dell", "LENOVO": "Lenovo", "Microsoft Corporation": "Microsoft",
                          "samsung": "Samsung", "HP": "Hewlett-Packard", "VMware, Inc.": "VMware"}


def _typed_serial(rng: random.Random, serial: str) -> str:
    """The serial number as someone typed it: mostly as is, else lower case, grouped or padded."""
    roll = rng.random()
    if roll < 0.88 or serial in PLACEHOLDER_SERIALS:
        return serial
    if roll < 0.92:
        return serial.lower()
    if roll < 0.96:
        return "-".join(serial[i:i + 4] for i in range(0, len(serial), 4))
    return " ".join(serial[i:i + 3] for i in range(0, len(serial), 3)) if roll < 0.98 else f" {serial} "


def _typed_mac(rng: random.Random, mac: str) -> str:
    pairs = [mac[i:i + 2] for i in range(0, 12, 2)]
    return rng.choice((":".join(pairs), "-".join(pairs).lower(), mac, f"{mac[:4]}.{mac[4:8]}.{mac[8:]}".lower()))


def _os_text(rng: random.Random, device: ManagedDevice) -> str:
    """The operating system as a person names it: Windows 11 Pro, macOS 14, iOS 17."""
    if device.operatingSystem == "Windows":
        build = int(device.osVersion.split(".")[2])
        return f"Windows {'11' if build >= 22000 else '10'} {rng.choice(('Pro', 'Enterprise'))}"
    return f"{device.operatingSystem} {device.osVersion.split('.')[0]}"


def _configuration(rng: random.Random, config_id: int, device: ManagedDevice, kind: DeviceKind,
                   contact_id: int | None, link: StoreConfigurationLink | None) -> StoreConfiguration:
    name = device.deviceName
    if rng.random() < 0.08:  # documented under the name it had before, or a descriptive one
        described = f"{device.userDisplayName or 'Spare'} {kind.configuration_type}"
        name = "DESKTOP-" + _chars(rng, 7) if kind.windows and rng.random() < 0.6 else described
    mac = device.wiFiMacAddress or device.ethernetMacAddress or ""
    return StoreConfiguration(
        id=config_id, name=name, configuration_type=kind.configuration_type,
        serial_number=_typed_serial(rng, device.serialNumber) or None,
        manufacturer=FRIENDLY_MANUFACTURERS.get(device.manufacturer, device.manufacturer)
        if rng.random() < 0.5 else device.manufacturer,
        model=device.model, operating_system=_os_text(rng, device), os_version=device.osVersion,
        mac_address=_typed_mac(rng, mac) if mac and rng.random() < 0.4 else None,
        primary_contact_id=contact_id, microsoft=link)


def _documented_fleet(rng: random.Random, fleet: _Fleet, org_id: int, contacts: dict[tuple[int, str], int],
                      ids: Iterator[int]) -> Iterator[StoreConfiguration]:
    """Some of the tenant's devices as the store documents them, with the mess of hand-kept
    records: other names, serials in other formats, a name reused with another serial. A device
    enrolled again keeps the configuration an earlier sync linked to its former Intune id; in some
    organizations an earlier sync linked the other documented devices too."""
    share = rng.choice((0.0, 0.3, 0.6, 0.9))
    synced_before = rng.random() < 0.25
    tenant_id = fleet.tenant.id
    for device in fleet.devices:
        former = fleet.reenrolled.get(device.id)
        if device.id in fleet.stale or (former is None and rng.random() >= (
                share if device.managedDeviceOwnerType != "personal" else share / 10)):
            continue
        kind, hardware = fleet.kinds[device.id]
        linked = former or (device.id if synced_before else None)
        link = StoreConfigurationLink(tenant_id=tenant_id, device_id=linked) if linked else None
        contact = contacts.get((org_id, device.userPrincipalName.lower())) if rng.random() < 0.8 else None
        configuration = _configuration(rng, next(ids), device, kind, contact, link)
        yield configuration
        if rng.random() < 0.03:  # the name reused for another machine
            yield configuration.model_copy(update={"id": next(ids), "serial_number": hardware.serial(rng) or None,
                                                   "mac_address": None, "microsoft": None})
    for _ in range(rng.choice((0, 0, 1, 2))):  # retired machines, gone from Intune
        yield StoreConfiguration(id=next(ids), name="DESKTOP-" + _chars(rng, 7), configuration_type="Laptop",
                                 serial_number=_dell_tag(rng), manufacturer="Dell", model="Latitude 5490",
                                 operating_system="Windows 10 Pro")


def _unmanaged_kit(rng: random.Random, ids: Iterator[int]) -> Iterator[StoreConfiguration]:
    for kind, manufacturer, model, serial, system, name in rng.sample(UNMANAGED_KIT, rng.choice((0, 0, 1, 2, 3))):
        yield StoreConfiguration(id=next(ids), name=name, configuration_type=kind, serial_number=serial(rng),
                                 manufacturer=manufacturer, model=model, operating_system=system)


def _document_devices(rng: random.Random, store: StoreSeed, tenant_of: dict[int, Tenant],
                      fleets: dict[str, _Fleet]) -> None:
    """Give the store's organizations the configurations someone documented by hand."""
    contacts = {(c.organization_id, e.value.lower()): c.id for c in store.contacts for e in c.emails}
    ids = itertools.count(1)
    for organization in store.organizations:
        tenant = tenant_of.get(organization.id)
        fleet = fleets.get(tenant.id) if tenant else None
        if fleet:
            organization.configurations.extend(_documented_fleet(rng, fleet, organization.id, contacts, ids))
        organization.configurations.extend(_unmanaged_kit(rng, ids))


def _equip(seed: int, tenants: list[Tenant], store: StoreSeed, tenant_of: dict[int, Tenant],
           devices_per_user: float, reference: int) -> None:
    """Intune's devices for every tenant with Intune, and the store's configurations."""
    _without_intune(seed, tenants)
    rng = random.Random(f"{seed}:devices")
    fleets = {t.id: _fleet(rng, t, reference, devices_per_user) for t in tenants if t.intune}
    _document_devices(rng, store, tenant_of, fleets)


# --------------------------------------------------------------------------- world


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building 100,000 users creates millions of objects and no garbage cycles; the cyclic
    collector would otherwise rescan the growing heap and double the run time.

    Afterwards the new objects go straight to the oldest generation (freeze then unfreeze moves
    them there without a scan), so that the young collections that follow do not each walk
    millions of objects: such a pause, in a process that also serves the sandbox, holds up
    every request in flight."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _direct_apps(seed: int, built: list[Tenant], direct: int) -> list[DirectApp]:
    """Give `direct` tenants an app registered in their own tenant; about half of them (the
    first (direct+1)//2 picked) are reached only that way (relationship "none")."""
    rng = random.Random(f"{seed}:direct")
    chosen = rng.sample(built, direct)
    apps = []
    for index, tenant in enumerate(chosen):
        if index < (direct + 1) // 2:
            tenant.relationship = "none"
        secret = "".join(rng.choice(SECRET_ALPHABET) for _ in range(40))
        apps.append(DirectApp(tenant_id=tenant.id, client_id=_guid(rng), client_secret=secret))
    return apps


def generate_world(seed: int = 7, tenants: int = 24, users: int = 1500, revoked: int = 1, direct: int = 0,
                   spread: Spread = "lognormal", renamed: int = 0, reference_date: datetime | None = None,
                   devices_per_user: float = 1.0) -> World:
    """A deterministic world of `tenants` customer tenants holding exactly `users` users, its times
    counted back from `reference_date` (default: the start of today, UTC), which it records.

    `direct` tenants get an app registered in their own tenant (World.direct_apps); about half
    of them have relationship "none" (reached only by direct login), the others stay in the
    partner's lists too. `spread` shapes tenant sizes: "lognormal" (the default) or "longtail"
    (heavier tail, for 1,000-tenant worlds). `renamed` organizations of the store seed get
    another spelling of their tenant's legal form ("Ltd" / "Limited", "&" / "and"), so that
    matching suggests them instead of matching them exactly. Tenants with Intune (all but a tenth of
    worlds of ten or more tenants) get about `devices_per_user` managed devices per user, and the
    store's organizations some configurations documenting them. The defaults, with reference_date
    world.FIRST_REFERENCE_DATE, give the same world as ever for a seed; the new options draw from
    their own random streams derived from the seed.
    """
    if tenants < 1 or users < tenants:
        raise ValueError(f"need at least one tenant and one user per tenant; got tenants={tenants}, "
                         f"users={users}: raise users to at least {max(tenants, 1)}")
    if not 0 <= revoked < tenants:
        raise ValueError(f"revoked={revoked} must be between 0 and tenants-1 ({tenants - 1}) "
                         "so that at least one tenant keeps its consent")
    if not 0 <= direct <= tenants:
        raise ValueError(f"direct={direct} must be between 0 and tenants ({tenants})")
    if spread not in SPREAD_SIGMA:
        raise ValueError(f"spread={spread!r} is not one of {', '.join(SPREAD_SIGMA)}")
    if not 0 <= devices_per_user <= 20:
        raise ValueError(f"devices_per_user={devices_per_user} must be between 0 and 20")
    reference = (reference_date or generation_day()).replace(microsecond=0)  # times are whole seconds
    if reference.tzinfo is None:
        raise ValueError(f"reference_date={reference.isoformat()} needs a time zone, e.g. tzinfo=UTC")
    with _gc_paused():
        world = _generate(seed, tenants, users, revoked, direct, spread, reference, devices_per_user)
    _rename_organizations(seed, world, renamed)
    return world


# Another spelling of a legal form, or of "&", that exact matching does not see through.
LEGAL_FORM_SPELLINGS = [(" Pty Ltd", " Pty. Limited"), (" Ltd", " Limited"), (" Inc", " Incorporated"),
                        (" Corp", " Corporation"), (" LLC", " L.L.C."), (" GmbH", " G.m.b.H."), (" AG", " A.G.")]


def _legal_variant(name: str) -> str:
    for ending, other in LEGAL_FORM_SPELLINGS:
        if name.endswith(ending):
            return name[: -len(ending)] + other
    if " & " in name:
        return name.replace(" & ", " and ")
    return f"{name} Ltd"


def _rename_organizations(seed: int, world: World, renamed: int) -> None:
    """Respell `renamed` organizations that carry their tenant's name."""
    if not renamed:
        return
    names = {" ".join(t.display_name.split()).casefold() for t in world.tenants}
    matched = [o for o in world.store.organizations if " ".join(o.name.split()).casefold() in names]
    for organization in random.Random(f"{seed}:renamed").sample(matched, min(renamed, len(matched))):
        wanted = " ".join(organization.name.split()).casefold()
        tenant_name = next(t.display_name for t in world.tenants
                           if " ".join(t.display_name.split()).casefold() == wanted)
        organization.name = _legal_variant(tenant_name)


def _generate(seed: int, tenants: int, users: int, revoked: int, direct: int, spread: Spread,
              reference_date: datetime, devices_per_user: float) -> World:
    rng = random.Random(seed)
    partner = Partner(tenant_id=_guid(rng), display_name="Sandbox Partner",
                      default_domain="sandboxpartner.onmicrosoft.com")
    app = App(client_id=_guid(rng), client_secret="".join(rng.choice(SECRET_ALPHABET) for _ in range(40)))
    bases = rng.sample(COMPANY_NAMES, len(COMPANY_NAMES))
    names_taken: set[str] = set()
    slugs_taken: set[str] = set()
    built = []
    if spread == "lognormal":
        sizes = _spread(rng, users, tenants)
    else:
        sizes = _spread(random.Random(f"{seed}:{spread}"), users, tenants, SPREAD_SIGMA[spread])
    reference = int(reference_date.timestamp())
    for index, count in enumerate(sizes):
        name = _company_name(rng, index, bases, names_taken)
        built.append(_tenant(rng, name, _slug(name, slugs_taken), count, reference))
    for tenant in rng.sample(built[1:], revoked):
        tenant.consent = "revoked"
    store, tenant_of = _store_seed(rng, built)
    _equip(seed, built, store, tenant_of, devices_per_user, reference)
    direct_apps = _direct_apps(seed, built, direct) if direct else []
    return World(seed=seed, reference_date=reference_date, partner=partner, app=app, tenants=built, store=store,
                 direct_apps=direct_apps)


# --------------------------------------------------------------------------- changes to a running world

# What `changed_user` edits by default, with how often each is picked.
CHANGEABLE_FIELDS: dict[str, int] = {"jobTitle": 4, "mobilePhone": 3, "businessPhones": 2, "officeLocation": 2,
                                     "accountEnabled": 1}
# Also accepted when asked for explicitly (a marriage: surname and display name change together).
EXTRA_CHANGEABLE_FIELDS = ("surname",)


def _plan_for(tenant: Tenant, reference_date: datetime) -> _TenantPlan:
    """The generation plan of an existing tenant, for users added to it later."""
    place = _place_of(tenant)
    alias = next((d.name for d in tenant.domains if not (d.is_initial or d.is_default)), None)
    by_id = {s.sku_id: s for s in SKU_CATALOG.values()}
    specs = [by_id[s.skuId] for s in tenant.skus
             if s.skuId in by_id and s.capabilityStatus in ("Enabled", "Warning")]
    taken: set[str] = set()
    for user in tenant.users:
        upn = user.userPrincipalName.lower()
        taken.add(upn)
        if "#ext#@" in upn:
            taken.add(upn.rsplit("@", 1)[0])
    return _TenantPlan(int(reference_date.timestamp()), tenant.display_name, tenant.default_domain,
                       tenant.initial_domain, alias, place, [s for s in specs if s.tier != "free"],
                       [s for s in specs if s.tier == "free"], taken)


def new_users(rng: random.Random, tenant: Tenant, reference_date: datetime, count: int = 1) -> list[User]:
    """New enabled members of an existing tenant, licensed when it has a plan to license them
    with, unique in it (the tenant itself is not changed); their times count back from
    reference_date, the world's."""
    plan = _plan_for(tenant, reference_date)
    with _gc_paused():
        return [_member(rng, plan, enabled=True, licensed=bool(plan.main_skus)) for _ in range(count)]


def changed_user(rng: random.Random, tenant: Tenant, user: User,
                 fields: tuple[str, ...] | None = None) -> tuple[User, frozenset[str]]:
    """A copy of user with one or two profile fields changed, and the names of those fields.

    `fields` limits the choice (any of CHANGEABLE_FIELDS and EXTRA_CHANGEABLE_FIELDS); by default
    one or two of jobTitle, mobilePhone, businessPhones, officeLocation, accountEnabled change.
    Every returned field really differs from the user's current value.
    """
    allowed = {**CHANGEABLE_FIELDS, **{f: 1 for f in EXTRA_CHANGEABLE_FIELDS}}
    pool = list(fields or CHANGEABLE_FIELDS)
    unknown = sorted(set(pool) - set(allowed))
    if unknown:
        raise ValueError(f"cannot change {', '.join(unknown)}: choose among {', '.join(allowed)}")
    wanted = min(len(pool), 1 if rng.random() < 0.7 else 2)
    picked: list[str] = []
    while len(picked) < wanted:
        name = rng.choices(pool, weights=[allowed[f] for f in pool])[0]
        if name not in picked:
            picked.append(name)
    place = _place_of(tenant)
    update: dict[str, Any] = {}
    for name in picked:
        if name == "jobTitle":
            update[name] = rng.choice([t for t in JOB_TITLES if t != user.jobTitle])
        elif name == "mobilePhone":
            update[name] = _fresh(rng, lambda: _phone(rng, place), user.mobilePhone)
        elif name == "businessPhones":
            phone = _fresh(rng, lambda: _phone(rng, place), user.businessPhones[0] if user.businessPhones else None)
            update[name] = [phone]
        elif name == "officeLocation":
            update[name] = rng.choice([o for o in (place.city, *OFFICE_LOCATIONS) if o != user.officeLocation])
        elif name == "accountEnabled":
            update[name] = not user.accountEnabled
        elif name == "surname":
            surname = rng.choice([s for s in LAST_NAMES if s != user.surname])
            update[name] = surname
            if user.givenName:
                update["displayName"] = f"{user.givenName} {surname}"
    return user.model_copy(update=update), frozenset(update)


def _place_of(tenant: Tenant) -> Place:
    return next((p for p in PLACES if p.city == tenant.city), PLACES[0])


def _fresh(rng: random.Random, make: Callable[[], str], current: str | None) -> str:
    value = make()
    while value == current:
        value = make()
    return value
