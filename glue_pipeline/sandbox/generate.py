"""Generate a sandbox world from a seed: customer tenants with users, licenses and mailboxes,
plus the documentation store's starting organizations and contacts.

The same seed and reference date always yield the same world: its times count back from the
reference date (by default the day of generation, which the world records), never from the moment
of each draw. The mess is deliberate: accented and hyphenated names, several UPN formats, alias
domains, guests, disabled and unlicensed users, shared mailboxes, concealed reports, revoked
consent, store organizations whose names differ in case and spacing, and contacts filed under
another email format for the same person.

Options beyond the original generator (`direct`, `spread="longtail"`) draw from their own
random streams derived from the seed, so the default arguments keep producing exactly the world
they always produced.
"""

from __future__ import annotations

import gc
import math
import random
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from .world import (
    DEFAULT_ROLES,
    App,
    AssignedLicense,
    ContactEmail,
    ContactPhone,
    DirectApp,
    Domain,
    Mailbox,
    Partner,
    SignInActivity,
    Sku,
    StoreContact,
    StoreOrganization,
    StoreSeed,
    Tenant,
    User,
    World,
)

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


def _store_seed(rng: random.Random, tenants: list[Tenant]) -> StoreSeed:
    matched = rng.sample(tenants, round(len(tenants) * 0.8))
    extras = rng.sample(EXTRA_ORGANIZATIONS, min(5, len(EXTRA_ORGANIZATIONS)))
    entries: list[tuple[str, Tenant | None]] = [(_name_variant(rng, t.display_name), t) for t in matched]
    entries += [(name, None) for name in extras]
    rng.shuffle(entries)
    organizations, contacts = [], []
    for org_id, (name, tenant) in enumerate(entries, start=1):
        organizations.append(StoreOrganization(id=org_id, name=name))
        domain = tenant.default_domain if tenant else f"{email_local(name.replace(' ', ''))}.com"
        if tenant:
            in_use = {u.userPrincipalName.lower() for u in tenant.users} | {
                (u.mail or "").lower() for u in tenant.users}
            for user in tenant.users:
                if user.userType == "Member" and user.givenName and rng.random() < 0.3:
                    contacts.append(_contact_for(rng, user, tenant, org_id, len(contacts) + 1, in_use))
        for _ in range(rng.choice([0, 0, 1, 2])):
            contacts.append(_former_employee(rng, domain, org_id, len(contacts) + 1))
    return StoreSeed(organizations=organizations, contacts=contacts)


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
                   spread: Spread = "lognormal", renamed: int = 0, reference_date: datetime | None = None) -> World:
    """A deterministic world of `tenants` customer tenants holding exactly `users` users, its times
    counted back from `reference_date` (default: the start of today, UTC), which it records.

    `direct` tenants get an app registered in their own tenant (World.direct_apps); about half
    of them have relationship "none" (reached only by direct login), the others stay in the
    partner's lists too. `spread` shapes tenant sizes: "lognormal" (the default) or "longtail"
    (heavier tail, for 1,000-tenant worlds). `renamed` organizations of the store seed get
    another spelling of their tenant's legal form ("Ltd" / "Limited", "&" / "and"), so that
    matching suggests them instead of matching them exactly. The defaults, with reference_date
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
    reference = (reference_date or generation_day()).replace(microsecond=0)  # times are whole seconds
    if reference.tzinfo is None:
        raise ValueError(f"reference_date={reference.isoformat()} needs a time zone, e.g. tzinfo=UTC")
    with _gc_paused():
        world = _generate(seed, tenants, users, revoked, direct, spread, reference)
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
              reference_date: datetime) -> World:
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
    store = _store_seed(rng, built)
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
