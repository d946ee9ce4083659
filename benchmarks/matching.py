"""Benchmark of the matching functions on deterministic synthetic data.

    python benchmarks/matching.py [--tenants N] [--organizations N] [--users N] [--contacts N]

(a) organization suggestions for tenants, (b) duplicate risk of new users against contacts.
Each part runs in its own process, so its peak RSS is its own; the peak is reset after the data
is generated (Linux /proc/self/clear_refs), so it covers the data plus the matching. Beside each
part, a naive baseline: a Python loop calling a rapidfuzz scorer for every pair, timed on a
sample and extrapolated to the full pair count; for duplicates also the recall of blocking
against scoring every pair of a sample. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glue_pipeline.matching.duplicates import (
    HIGH_RISK,
    MEDIUM_RISK,
    candidate_pairs,
    duplicate_risk,
    score_pairs,
)
from glue_pipeline.matching.names import (
    ascii_key,
    company_key,
    core_without_generic,
    nickname_relatives,
)
from glue_pipeline.matching.suggest import (
    strong_suggestion_threshold,
    suggest_organizations,
)

SEED = 20240611
SYLLABLES = ["ka", "ro", "mi", "ta", "ne", "so", "lu", "vi", "da", "po", "re", "fa", "gi", "no", "be", "tu", "sa", "le", "wi", "mo", "ha", "ri", "zu", "ko", "an", "el", "or", "in", "us", "ar", "en", "th", "st", "br", "tr", "gr", "cl", "pl", "sh", "ch"]
LEGAL_VARIANTS = ("Ltd", "Limited", "Ltd.", "Inc", "Inc.", "Incorporated", "LLC", "GmbH", "Pty Ltd",
                  "S.A.", "SA", "B.V.", "plc", "AG", "Corp", "Corporation", "Co. Ltd", "", "", "")
GENERIC = ("Group", "Holdings", "Services", "Solutions", "Consulting", "Technologies", "Global",
           "International", "Systems", "Partners")
COMMON_FIRST = tuple(sorted({"robert", "william", "elizabeth", "james", "michael", "thomas", "richard",
                             "christopher", "david", "daniel", "joseph", "anthony", "matthew", "andrew",
                             "jennifer", "margaret", "edward", "john", "charles", "kenneth", "timothy"}
                            | set(["mary", "linda", "barbara", "susan", "lisa", "nancy", "karen", "betty", "helen", "sandra", "donna", "carol", "ruth", "sharon", "michelle", "laura", "sarah", "kimberly", "deborah", "jessica", "shirley", "cynthia", "angela", "melissa", "brenda", "amy", "anna", "rebecca", "virginia", "kathleen", "pamela", "martha", "debra", "amanda", "stephanie", "carolyn", "christine", "marie", "janet", "catherine", "frances", "ann", "joyce", "diane", "alice", "julie", "heather", "teresa", "doris", "gloria", "evelyn", "jean", "cheryl", "mildred", "katherine", "joan", "ashley", "judith", "rose", "janice", "kelly", "nicole", "judy", "christina", "kathy", "theresa", "beverly", "denise", "tammy", "irene", "jane", "lori", "rachel", "marilyn", "andrea", "kathryn", "louise", "sara", "anne", "jacqueline", "wanda", "bonnie", "julia", "ruby", "lois", "tina", "phyllis", "norma", "paula", "diana", "annie", "lillian", "emily", "robin", "peggy", "crystal", "gladys", "rita", "dawn", "connie", "florence", "tracy", "edna", "tiffany", "carmen", "rosa", "cindy", "grace", "wendy", "victoria", "edith", "kim", "sherry", "sylvia", "josephine", "thelma", "shannon", "sheila", "ethel", "ellen", "elaine", "marjorie", "carrie", "charlotte", "monica", "esther", "pauline", "emma", "juanita", "anita", "rhonda", "hazel", "amber", "eva", "debbie", "april", "leslie", "clara", "lucille", "jamie", "joanne", "eleanor", "valerie", "danielle", "megan", "alicia", "suzanne", "michele", "gail", "bertha", "darlene", "veronica", "jill", "erin", "geraldine", "lauren", "cathy", "joann", "lorraine", "lynn", "sally", "regina", "erica", "beatrice", "dolores", "bernice", "audrey", "yvonne", "annette", "june", "samantha", "marion", "dana", "stacy", "ana", "renee", "ida", "vivian", "roberta", "holly", "brittany", "melanie", "loretta", "yolanda", "jeanette", "laurie", "katie", "kristen", "vanessa", "alma", "sue", "elsie", "beth", "jeanne", "george", "kevin", "brian", "jason", "gary", "larry", "jeffrey", "frank", "scott", "eric", "stephen", "raymond", "gregory", "jerry", "dennis", "walter", "patrick", "peter", "harold", "douglas", "henry", "carl", "arthur", "ryan", "roger", "joe", "juan", "jack", "albert", "jonathan", "justin", "terry", "gerald", "keith", "samuel", "willie", "ralph", "lawrence", "nicholas", "roy", "benjamin", "bruce", "brandon", "adam", "harry", "fred", "wayne", "billy", "steve", "louis", "jeremy", "aaron", "randy", "howard", "eugene", "carlos", "russell", "bobby", "victor", "martin", "ernest", "phillip", "todd", "jesse", "craig", "alan", "shawn", "clarence", "sean", "philip", "chris", "johnny", "earl", "jimmy", "antonio", "danny", "bryan", "tony", "luis", "mike", "stanley", "leonard", "nathan", "dale", "manuel", "rodney", "curtis", "norman", "allen", "marvin", "vincent", "glenn", "jeffery", "travis", "jeff", "chad", "jacob", "lee", "melvin", "alfred", "kyle", "francis", "bradley", "jesus", "herbert", "frederick", "ray", "joel", "edwin", "don", "eddie", "ricky", "troy", "randall", "barry", "alexander", "bernard", "mario", "leroy", "francisco", "marcus", "micheal", "theodore", "clifford", "miguel", "oscar", "jay", "jim", "tom", "calvin", "alex", "jon", "ronnie", "bill", "lloyd", "tommy", "leon", "derek", "warren", "darrell", "jerome", "floyd", "leo", "alvin", "tim", "wesley", "gordon", "dean", "greg", "jorge", "dustin", "pedro", "derrick", "dan", "lewis", "zachary", "corey", "herman", "maurice", "vernon", "roberto", "clyde", "glen", "hector", "shane", "ricardo", "sam", "rick", "lester", "brent", "ramon", "charlie", "tyler", "gilbert", "gene", "marc", "reginald", "ruben", "brett", "angel", "nathaniel", "rafael", "leslie", "edgar", "milton", "raul", "ben", "chester", "cecil", "duane", "franklin", "andre", "elmer", "brad", "gabriel", "ron", "mitchell", "roland", "arnold", "harvey", "jared", "adrian", "karl", "cory", "claude", "erik", "darryl", "jamie", "neil", "jessie", "christian", "javier", "fernando", "clinton", "ted", "mathew", "tyrone", "darren", "lonnie", "lance", "cody", "julio", "kelly", "kurt", "allan", "nelson", "guy", "clayton", "hugh", "max", "dwayne", "dwight", "armando", "felix", "jimmie", "everett", "jordan", "ian", "wallace", "ken", "bob", "jaime", "casey", "alfredo", "alberto", "dave", "ivan", "johnnie", "sidney", "byron", "julian", "isaac", "morris", "clifton", "willard", "daryl", "ross", "virgil", "andy", "marshall", "salvador", "perry", "kirk", "sergio", "marion", "tracy", "seth", "kent", "terrance", "rene", "eduardo", "terrence", "enrique", "freddie", "wade"])))
COMMON_LAST = tuple(["smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker", "hall", "rivera", "campbell", "mitchell", "carter", "roberts", "muller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker", "schulz", "hoffmann", "dubois", "durand", "moreau", "laurent", "simon", "michel", "lefebvre", "leroy", "rossi", "russo", "ferrari", "esposito", "bianchi", "romano", "colombo", "jansen", "devries", "vandenberg", "bakker", "visser", "smit", "meijer", "nielsen", "jensen", "hansen", "pedersen", "andersen", "larsen", "kowalski", "nowak", "wisniewski"])
ACCENTS = str.maketrans("aeiouc", "áéíöüç")
# Cyrillic а с е і р and Greek ο: letters that look like Latin ones.
LOOKALIKE_LETTERS = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "i": "\u0456", "p": "\u0440",
                     "o": "\u03bf"}
LOOKALIKE_SHARE = 0.002


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--organizations", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--part", choices=["suggest", "duplicates"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        result = run_suggest(args) if args.part == "suggest" else run_duplicates(args)
        print(json.dumps(result))
        return
    results = {}
    for part in ("suggest", "duplicates"):
        completed = subprocess.run([sys.executable, __file__, "--part", part,
                                    *_size_args(args)], capture_output=True, text=True, check=True)
        results.update(json.loads(completed.stdout.strip().splitlines()[-1]))
    _print_table(results)
    print(json.dumps(results))


def _size_args(args: argparse.Namespace) -> list[str]:
    return [f"--{name}={getattr(args, name)}" for name in ("tenants", "organizations", "users",
                                                           "contacts")]


# ---------------------------------------------------------------------------------------------
# Memory and timing

def _reset_peak_rss() -> None:
    gc.collect()
    with contextlib.suppress(OSError):  # not Linux: the peak then includes data generation
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(func, *args):
    start = time.perf_counter()
    result = func(*args)
    return result, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Synthetic data

def _pseudo_words(rng: np.random.Generator, count: int, syllables: tuple[int, int]) -> np.ndarray:
    """Distinct pronounceable words."""
    words: set[str] = set()
    pool = np.array(SYLLABLES)
    while len(words) < count:
        n = rng.integers(*syllables, size=count)
        parts = [pool[rng.integers(0, len(pool), size=k)] for k in n]
        words.update("".join(p) for p in parts)
    return np.array(sorted(words)[:count], dtype=object)


def _zipf_choice(rng: np.random.Generator, values: np.ndarray, size: int,
                 offset: float) -> np.ndarray:
    """Skewed choice: a few values are very common, like real names."""
    weights = 1.0 / (np.arange(len(values)) + offset)
    return values[rng.choice(len(values), size=size, p=weights / weights.sum())]


def _typo(rng: np.random.Generator, word: str) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = rng.integers(0, 3)
    if kind == 0:  # substitution
        return word[:i] + "xyzq"[int(rng.integers(0, 4))] + word[i + 1:]
    if kind == 1:  # deletion
        return word[:i] + word[i + 1:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]  # transposition


def make_companies(tenant_count: int, organization_count: int, seed: int = SEED):
    """Organizations, their contacts' domains, and tenants: 60% variants of an organization's
    name (legal form, generic word, '&', accents, typo), half of them with the organization's
    domain verified; the rest new names."""
    rng = np.random.default_rng(seed)
    words = _pseudo_words(rng, 20_000, (2, 4))
    first = words[rng.integers(0, len(words), organization_count * 2)]
    second = words[rng.integers(0, len(words), organization_count * 2)]
    two = rng.random(organization_count * 2) < 0.5
    bases = pd.unique(np.where(two, first + " " + second, first))
    org_bases, new_bases = bases[:organization_count], bases[organization_count:]
    generic = [" " + str(rng.choice(GENERIC)) if r < 0.2 else ""
               for r in rng.random(len(org_bases))]
    suffix = rng.choice(LEGAL_VARIANTS, len(org_bases))
    names = [f"{b.title()}{g} {s}".strip() for b, g, s in zip(org_bases, generic, suffix)]
    organizations = pd.DataFrame({"id": np.arange(1, len(names) + 1), "name": names})
    org_domain = np.array([b.replace(" ", "") + ".com" for b in org_bases], dtype=object)
    contacts_per_org = rng.integers(0, 6, len(org_bases))
    organization_domains = pd.DataFrame({
        "organization_id": np.repeat(organizations["id"].to_numpy(), contacts_per_org),
        "domain": np.repeat(org_domain, contacts_per_org)})

    derived = int(tenant_count * 0.6)
    source = rng.choice(len(names), derived, replace=False)
    tenant_names = [_company_variant(rng, org_bases[i], generic[i]) for i in source]
    tenant_names += [f"{b.title()} {rng.choice(LEGAL_VARIANTS)}".strip()
                     for b in new_bases[:tenant_count - derived]]
    domains = [[f"t{i}.onmicrosoft.com"] + ([org_domain[s]] if rng.random() < 0.5 else [])
               for i, s in enumerate(source)]
    domains += [[f"t{i}.onmicrosoft.com", b.replace(" ", "") + ".net"]
                for i, b in enumerate(new_bases[:tenant_count - derived], start=derived)]
    tenants = pd.DataFrame({"tenant_id": [f"t{i}" for i in range(len(tenant_names))],
                            "tenant_name": tenant_names, "domains": domains})
    truth = np.r_[organizations["id"].to_numpy()[source], np.zeros(len(tenants) - derived, int)]
    return tenants, organizations, organization_domains, truth


def _company_variant(rng: np.random.Generator, base: str, generic: str) -> str:
    name = base
    roll = rng.random()
    if roll < 0.25:
        name = " ".join(_typo(rng, w) for w in name.split())
    elif roll < 0.35:
        name = name.translate(ACCENTS)
    name = name.title() + (generic if rng.random() < 0.7 else " " + rng.choice(GENERIC))
    return f"{name} {rng.choice(LEGAL_VARIANTS)}".strip()


def make_people(user_count: int, contact_count: int, seed: int = SEED):
    """One large tenant (domains contoso-like .com, its .co.uk alias, its onmicrosoft.com)
    and contacts of many companies, 3% of them of the tenant's own company on its domains.
    Contacts have one or two emails in assorted patterns and phones (some a company's shared
    line). Users: 15% variants of a contact, mostly of the tenant's company (nickname, typo,
    accents, swapped names, the contact's mailbox on the alias domain, the same phone, names
    missing from the directory), 0.2% look-alikes of one of the tenant's contacts (a Cyrillic
    or Greek letter for a Latin one in the contact's address or name), the rest new people.
    Returns users, contacts, the tenant's domains, per user the contact it was made from (or
    -1), and the positions of the look-alikes."""
    rng = np.random.default_rng(seed + 1)
    first_pool = np.array(COMMON_FIRST + tuple(_pseudo_words(rng, 1500, (2, 3))), dtype=object)
    last_pool = np.array(COMMON_LAST + tuple(_pseudo_words(rng, 40_000, (2, 4))), dtype=object)
    domains = np.array([w + ".com" for w in _pseudo_words(rng, 60_000, (2, 4))], dtype=object)
    tenant_domains = [domains[0], domains[0].removesuffix(".com") + ".co.uk",
                      domains[0].removesuffix(".com") + ".onmicrosoft.com"]
    first = _zipf_choice(rng, first_pool, contact_count, 20)
    last = _zipf_choice(rng, last_pool, contact_count, 50)
    company = np.where(rng.random(contact_count) < 0.03, 0,
                       rng.integers(1, len(domains), contact_count))
    pattern = rng.integers(0, 6, contact_count)
    on_alias = rng.random(contact_count) < 0.5
    emails = [[_local(f, sur, p) + "@" + (tenant_domains[int(a)] if c == 0 else domains[c])]
              for f, sur, p, c, a in zip(first, last, pattern, company, on_alias)]
    mailboxes: set[str] = set()  # the tenant's local parts: one person each on all its domains
    for i in np.flatnonzero(company == 0):
        emails[i][0] = _unique_address(emails[i][0], mailboxes)
    for i in np.flatnonzero(rng.random(contact_count) < 0.2):
        emails[i].append(f"{first[i]}{last[i]}{rng.integers(1, 99)}@gmail.com")
    own_line = rng.integers(0, 10**7, contact_count)
    phones = [[f"+1 {n // 10**4 + 200} 555 {n % 10**4:04d}"] if r < 0.5
              else ([f"+1 800 {c:06d}"] if r < 0.6 else [])  # the company's shared line
              for r, n, c in zip(rng.random(contact_count), own_line, company)]
    contacts = pd.DataFrame({"contact_id": np.arange(1, contact_count + 1),
                             "first_name": [f.title() for f in first],
                             "last_name": [sur.title() for sur in last],
                             "emails": emails, "phones": phones})

    duplicates = int(user_count * 0.15)
    tenant_contacts = np.flatnonzero(company == 0)
    from_tenant = min(int(duplicates * 0.9), len(tenant_contacts))
    source = np.r_[rng.choice(tenant_contacts, from_tenant, replace=False),
                   rng.choice(contact_count, duplicates - from_tenant, replace=False)]
    rows = [_user_variant(rng, i, contacts.iloc[s], tenant_domains) for i, s in enumerate(source)]
    for row in rows:  # a user whose UPN is a contact's address is matched, not new
        row["email"] = _unique_address(row["email"], mailboxes)
    new_first = _zipf_choice(rng, first_pool, user_count - duplicates, 20)
    new_last = _zipf_choice(rng, last_pool, user_count - duplicates, 50)
    for i, (f, sur) in enumerate(zip(new_first, new_last), start=duplicates):
        rows.append({"user_id": f"u{i}", "first_name": f.title(), "last_name": sur.title(),
                     "display_name": f"{f.title()} {sur.title()}",
                     "email": _unique_address(f"{f}.{sur}@{tenant_domains[0]}", mailboxes),
                     "other_emails": [], "phones": []})
    truth = np.r_[contacts["contact_id"].to_numpy()[source], -np.ones(user_count - duplicates, int)]
    # Look-alikes take the last new people's places, from a generator of their own so that
    # everything else is as it was without them.
    lookalike_rng = np.random.default_rng(seed + 3)
    lookalikes = np.arange(user_count - min(int(user_count * LOOKALIKE_SHARE),
                                            len(tenant_contacts)), user_count)
    for i, s in zip(lookalikes, lookalike_rng.choice(tenant_contacts, len(lookalikes),
                                                     replace=False)):
        rows[i] = _lookalike_user(lookalike_rng, i, contacts.iloc[s], tenant_domains)
        truth[i] = contacts["contact_id"].iat[s]
    return pd.DataFrame(rows), contacts, tenant_domains, truth, lookalikes


def _unique_address(address: str, taken: set[str]) -> str:
    """The address, or with a number added if its local part is taken ('jo@' -> 'jo2@'), as a
    mail server whose domains are aliases of each other has it; the local part is then taken."""
    local, _, domain = address.partition("@")
    n, candidate = 1, local
    while candidate in taken:
        n += 1
        candidate = f"{local}{n}"
    taken.add(candidate)
    return f"{candidate}@{domain}"


def _local(first: str, last: str, pattern: int) -> str:
    return (f"{first}.{last}", f"{first[0]}{last}", f"{first}{last}", f"{first}",
            f"{last}.{first}", f"{first}_{last}")[pattern]


def _lookalike_user(rng: np.random.Generator, i: int, contact: pd.Series,
                    tenant_domains: list[str]) -> dict:
    """The contact's name and first address, one of the two with a look-alike letter: the UPN is
    then that address, or, when the name has the letter, a mailbox that fits no pattern."""
    first, last = contact["first_name"], contact["last_name"]
    address, name = contact["emails"][0], f"{first} {last}"
    if rng.random() < 0.5 or not set(name) & LOOKALIKE_LETTERS.keys():
        address = _with_lookalike(rng, address)  # its domain has a "c" or an "o"
    else:
        name = _with_lookalike(rng, name)
        first, last = name[:len(first)], name[len(first) + 1:]
        address = f"x{i}@{tenant_domains[2]}"
    return {"user_id": f"u{i}", "first_name": first, "last_name": last,
            "display_name": f"{first} {last}", "email": address, "other_emails": [], "phones": []}


def _with_lookalike(rng: np.random.Generator, text: str) -> str:
    places = [i for i, ch in enumerate(text) if ch in LOOKALIKE_LETTERS]
    i = places[int(rng.integers(len(places)))]
    return text[:i] + LOOKALIKE_LETTERS[text[i]] + text[i + 1:]


def _user_variant(rng: np.random.Generator, i: int, contact: pd.Series,
                  tenant_domains: list[str]) -> dict:
    first, last = contact["first_name"], contact["last_name"]
    kind = rng.integers(0, 6)
    nicknames = sorted(nickname_relatives(first))
    if kind == 0 and nicknames:
        first = rng.choice(nicknames).title()
    elif kind == 1:
        first, last = (_typo(rng, first), last) if rng.random() < 0.5 else (first, _typo(rng, last))
    elif kind == 2:
        first, last = first.translate(ACCENTS), last.translate(ACCENTS)
    elif kind == 3:
        first, last = last, first
    upn_domain = tenant_domains[0] if rng.random() < 0.7 else tenant_domains[2]
    local, _, contact_domain = contact["emails"][0].partition("@")
    user = {"user_id": f"u{i}", "first_name": first, "last_name": last,
            "display_name": f"{first} {last}",
            "email": f"{ascii_key(first)}.{ascii_key(last)}@{upn_domain}", "other_emails": [],
            "phones": []}
    if kind == 4:  # the contact's mailbox, on the other of the tenant's two mail domains
        alias = tenant_domains[1] if contact_domain == tenant_domains[0] else tenant_domains[0]
        user["other_emails"] = [f"smtp:{local}@{alias}"]
    if kind == 5 and contact["phones"]:
        user["phones"] = list(contact["phones"])
    if rng.random() < 0.2:  # name missing in the directory: the display name has it
        user["first_name"] = user["last_name"] = None
    return user


# ---------------------------------------------------------------------------------------------
# Parts

def run_suggest(args: argparse.Namespace) -> dict:
    tenants, organizations, organization_domains, truth = make_companies(args.tenants,
                                                                         args.organizations)
    _reset_peak_rss()
    suggestions, seconds = _timed(suggest_organizations, tenants, organizations,
                                  organization_domains)
    peak = _peak_rss_mib()

    tenant_keys = [_fuzzy_key(n) for n in tenants["tenant_name"]]
    org_keys = [_fuzzy_key(n) for n in organizations["name"]]
    sample_tenants = tenant_keys[:max(1, 1_000_000 // len(org_keys))]
    start = time.perf_counter()
    for tenant in sample_tenants:
        for org in org_keys:
            fuzz.ratio(tenant, org)
    naive_rate = len(sample_tenants) * len(org_keys) / (time.perf_counter() - start)
    pairs = len(tenants) * len(organizations)

    best = suggestions[suggestions["rank"] == 1].set_index("tenant_id")
    top = best["organization_id"].reindex(tenants["tenant_id"]).to_numpy()
    top_score = best["score"].reindex(tenants["tenant_id"]).fillna(0).to_numpy()
    derived = truth > 0
    return {
        "tenants": len(tenants), "organizations": len(organizations), "suggest_pairs": pairs,
        "suggest_s": round(seconds, 2), "suggest_peak_rss_mib": round(peak, 1),
        "suggest_naive_s": round(pairs / naive_rate, 1),
        "suggest_speedup": round(pairs / naive_rate / seconds, 1),
        "suggest_rows": len(suggestions),
        "suggest_top1_correct": round(float(np.mean(top[derived] == truth[derived])), 4),
        "suggest_strong_on_new_names": round(float(np.mean(
            top_score[~derived] >= strong_suggestion_threshold)), 4),
    }


def _fuzzy_key(name: str) -> str:
    return core_without_generic(company_key(name)[0])


def run_duplicates(args: argparse.Namespace) -> dict:
    users, contacts, tenant_domains, truth, lookalikes = make_people(args.users, args.contacts)
    _reset_peak_rss()
    risk, seconds = _timed(duplicate_risk, users, contacts, tenant_domains)
    peak = _peak_rss_mib()

    first = risk.drop_duplicates("user_id").set_index("user_id")
    planted = truth > 0
    found = first["contact_id"].reindex(users["user_id"]).to_numpy()
    found_level = first["score"].reindex(users["user_id"]).fillna(0).to_numpy()
    pairs = len(users) * len(contacts)
    blocked = len(candidate_pairs(users, contacts, tenant_domains))
    naive_rate = _naive_pair_rate(users, contacts)
    recall = _blocking_recall(users, contacts, tenant_domains, truth)
    return {
        "users": len(users), "contacts": len(contacts), "dup_pairs": pairs,
        "dup_candidate_pairs": blocked, "dup_pairs_per_candidate": round(pairs / max(blocked, 1)),
        "dup_s": round(seconds, 2), "dup_peak_rss_mib": round(peak, 1),
        "dup_naive_s": round(pairs / naive_rate, 1),
        "dup_speedup": round(pairs / naive_rate / seconds, 1),
        "dup_rows": len(risk),
        "dup_rows_high": int((risk["level"] == "high").sum()),
        "dup_rows_medium": int((risk["level"] == "medium").sum()),
        "dup_planted_found_top1_medium_or_high": round(float(np.mean(
            (found[planted] == truth[planted]) & (found_level[planted] >= MEDIUM_RISK))), 4),
        "dup_new_users_with_high": round(float(np.mean(found_level[~planted] >= HIGH_RISK)), 4),
        "dup_lookalikes": len(lookalikes),
        "dup_lookalikes_contact_high": _share_with_contact_high(risk, users, truth, lookalikes),
        **recall,
    }


def _share_with_contact_high(risk: pd.DataFrame, users: pd.DataFrame, truth: np.ndarray,
                             positions: np.ndarray) -> float:
    """Share of the users at `positions` with the contact they were made from among their
    high-risk candidates (not necessarily first: other contacts may have the same name)."""
    high = risk[risk["level"] == "high"]
    pairs = set(zip(high["user_id"], high["contact_id"]))
    hits = [(users["user_id"].iat[i], truth[i]) in pairs for i in positions]
    return round(float(np.mean(hits)), 4) if hits else 1.0


def _naive_pair_rate(users: pd.DataFrame, contacts: pd.DataFrame, sample: int = 500_000) -> float:
    """Pairs per second of a Python loop scoring first and last names with Jaro-Winkler."""
    rng = np.random.default_rng(SEED)
    u = rng.integers(0, len(users), sample)
    c = rng.integers(0, len(contacts), sample)
    uf = users["first_name"].fillna("").to_numpy()[u]
    ul = users["last_name"].fillna("").to_numpy()[u]
    cf, cl = contacts["first_name"].to_numpy()[c], contacts["last_name"].to_numpy()[c]
    similarity = JaroWinkler.normalized_similarity
    start = time.perf_counter()
    for a, b, x, y in zip(uf, cf, ul, cl):
        similarity(a, b)
        similarity(x, y)
    return sample / (time.perf_counter() - start)


def _blocking_recall(users: pd.DataFrame, contacts: pd.DataFrame, tenant_domains: list[str],
                     truth: np.ndarray, sample_users: int = 200,
                     sample_contacts: int = 50_000) -> dict:
    """Every pair of a sample scored (no blocking) against the pairs blocking lets through."""
    rng = np.random.default_rng(SEED + 2)
    user_rows = rng.choice(len(users), min(sample_users, len(users)), replace=False)
    sampled_users = users.iloc[user_rows]
    sources = truth[user_rows][truth[user_rows] > 0]
    others = rng.choice(len(contacts), min(sample_contacts, len(contacts)), replace=False)
    sampled_contacts = contacts[contacts["contact_id"].isin(sources)
                                | contacts.index.isin(others)]
    all_pairs = pd.MultiIndex.from_product([sampled_users["user_id"],
                                            sampled_contacts["contact_id"]],
                                           names=["user_id", "contact_id"]).to_frame(index=False)
    reference = score_pairs(sampled_users, sampled_contacts, tenant_domains, all_pairs)
    blocked = candidate_pairs(sampled_users, sampled_contacts, tenant_domains)
    blocked_keys = set(zip(blocked["user_id"], blocked["contact_id"]))
    result = {"dup_recall_sample_pairs": len(all_pairs),
              "dup_recall_blocked_pairs": len(blocked)}
    for name, threshold in (("medium", MEDIUM_RISK), ("high", HIGH_RISK)):
        wanted = reference[reference["score"] >= threshold]
        hits = sum(key in blocked_keys for key in zip(wanted["user_id"], wanted["contact_id"]))
        result[f"dup_blocking_recall_{name}"] = round(hits / len(wanted), 4) if len(wanted) else 1.0
        result[f"dup_reference_pairs_{name}"] = len(wanted)
    return result


# ---------------------------------------------------------------------------------------------
# Report

def _print_table(r: dict) -> None:
    rows = [
        ("suggestions", f"{r['tenants']:,} x {r['organizations']:,}", r["suggest_s"],
         r["suggest_naive_s"], r["suggest_speedup"], r["suggest_peak_rss_mib"]),
        ("duplicate risk", f"{r['users']:,} x {r['contacts']:,}", r["dup_s"], r["dup_naive_s"],
         r["dup_speedup"], r["dup_peak_rss_mib"]),
    ]
    print(f"{'part':<16}{'size':>24}{'seconds':>10}{'naive s':>12}{'speedup':>10}{'peak MiB':>10}")
    for part, size, seconds, naive, speedup, peak in rows:
        print(f"{part:<16}{size:>24}{seconds:>10.2f}{naive:>12,.0f}{speedup:>10,.0f}{peak:>10.0f}")
    print()
    print(f"blocking: {r['dup_candidate_pairs']:,} candidate pairs scored out of "
          f"{r['dup_pairs']:,} ({r['dup_pairs_per_candidate']:,} pairs per candidate)")
    print(f"suggestions: correct organization ranked first for {r['suggest_top1_correct']:.1%} of "
          f"tenants made from one; new names with a strong suggestion: "
          f"{r['suggest_strong_on_new_names']:.1%}")
    print(f"duplicates: planted duplicate ranked first at medium or high for "
          f"{r['dup_planted_found_top1_medium_or_high']:.1%}; new users with a high risk: "
          f"{r['dup_new_users_with_high']:.1%}; look-alikes with their contact at high: "
          f"{r['dup_lookalikes_contact_high']:.1%} of {r['dup_lookalikes']}")
    print(f"blocking recall on a sample of {r['dup_recall_sample_pairs']:,} pairs scored without "
          f"blocking: {r['dup_blocking_recall_medium']:.1%} of medium-or-higher "
          f"({r['dup_reference_pairs_medium']}), {r['dup_blocking_recall_high']:.1%} of high "
          f"({r['dup_reference_pairs_high']})")


if __name__ == "__main__":
    main()
