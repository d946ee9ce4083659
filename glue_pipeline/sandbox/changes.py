"""What the sandbox keeps about each tenant's users while it runs: a stable order, a log of
changes (the state behind GET /users/delta) and the users' JSON, cached per $select.

A TenantLog's version is the length of its log: every change to a user (edited, added,
removed) appends one entry naming the user and the fields that changed. A delta round from
version V to version T lists each user with an entry in log[V:T] whose fields meet the round's
$select (additions and removals always do), in the order they first changed; the log is
append-only, so the list of a round never changes while a client pages through it.

Users are changed through TenantLog (and the Sandbox methods built on it), which replaces a
User object rather than editing it. The JSON cache is keyed by object identity, so a replaced
user is encoded again; a User edited in place while the sandbox runs is not noticed until
Sandbox.refresh(), which restarts every log. A tenant whose user list was replaced or resized
behind the log's back is re-indexed and its log restarted on its next use. Delta tokens issued
before a restart answer 410 Gone, as Graph does when it must resynchronize.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .world import Tenant, User

REMOVED_REASONS = ("changed", "deleted")  # soft-deleted (restorable) or permanently deleted
_ROUNDS_KEPT = 32  # delta rounds remembered per tenant
_SELECTS_KEPT = 4  # distinct $select lists whose JSON is cached per tenant

Encoder = Callable[[User, tuple[str, ...]], bytes]


@dataclass(frozen=True)
class Entry:
    user_id: str
    fields: frozenset[str] | None  # None: the whole user (added, restored or removed)


class TenantLog:
    """The users of one tenant in a stable order, the log of changes to them, and their JSON."""

    def __init__(self, tenant: Tenant, encode: Encoder, generation: int = 0) -> None:
        self.tenant = tenant
        self.generation = generation  # bumped by restart(): delta tokens of older generations are gone
        self._encode = encode
        self.entries: list[Entry] = []
        self.removed: dict[str, str] = {}  # user id -> reason, for users removed while running
        self._rounds: OrderedDict[tuple[int, int, frozenset[str]], list[str]] = OrderedDict()
        self._json: OrderedDict[tuple[str, ...], dict[str, tuple[User, bytes]]] = OrderedDict()
        self._index()

    def _index(self) -> None:
        users = self.tenant.users
        self.seq = {u.id: i for i, u in enumerate(users)}
        self.next_seq = len(users)
        self.by_id = {u.id: u for u in users}
        self._upns = {u.userPrincipalName.lower() for u in users}
        self._list, self._length = users, len(users)

    # -- keeping in step with the tenant

    def in_step(self) -> bool:
        """False once someone replaced or resized tenant.users without going through this log."""
        return self.tenant.users is self._list and len(self._list) == self._length

    def restart(self) -> None:
        """Re-index the tenant's users and start a new log (older delta tokens become unknown)."""
        self.generation += 1
        self.entries.clear()
        self.removed.clear()
        self._rounds.clear()
        self._json.clear()
        self._index()

    @property
    def version(self) -> int:
        return len(self.entries)

    # -- changes

    def _record(self, user_id: str, fields: frozenset[str] | None) -> None:
        self.entries.append(Entry(user_id, fields))

    def replace(self, new: User, fields: frozenset[str]) -> None:
        """Put an edited copy of a user in place of the user with the same id."""
        index = self.position(new.id)
        old = self._list[index]
        if new.userPrincipalName != old.userPrincipalName:
            self._upns.discard(old.userPrincipalName.lower())
            self._upns.add(new.userPrincipalName.lower())
        self._list[index] = new
        self.by_id[new.id] = new
        self._record(new.id, frozenset(fields))

    def add(self, user: User) -> None:
        if user.id in self.by_id:
            raise ValueError(f"user id {user.id} already exists in tenant {self.tenant.id}")
        upn = user.userPrincipalName.lower()
        if upn in self._upns:
            raise ValueError(f"userPrincipalName {user.userPrincipalName} already exists in tenant {self.tenant.id}")
        self._upns.add(upn)
        self._list.append(user)
        self._length += 1
        self.seq[user.id] = self.next_seq
        self.next_seq += 1
        self.by_id[user.id] = user
        self.removed.pop(user.id, None)
        self._record(user.id, None)

    def remove(self, user_id: str, reason: str = "changed") -> User:
        if reason not in REMOVED_REASONS:
            raise ValueError(f"reason {reason!r} must be one of {', '.join(REMOVED_REASONS)}")
        index = self.position(user_id)
        user = self._list.pop(index)
        self._length -= 1
        self._upns.discard(user.userPrincipalName.lower())
        del self.by_id[user_id], self.seq[user_id]
        self.removed[user_id] = reason
        self._record(user_id, None)
        for cache in self._json.values():
            cache.pop(user_id, None)
        return user

    def position(self, user_id: str) -> int:
        seq = self.seq.get(user_id)
        if seq is None:
            raise KeyError(f"no user {user_id} in tenant {self.tenant.id}")
        return bisect_right(self._list, seq, key=lambda u: self.seq[u.id]) - 1

    # -- reading

    def after(self, cursor: int, count: int) -> tuple[list[User], int | None]:
        """Up to count users whose position in the stable order is past cursor, and the cursor
        after the last of them (None when no user follows)."""
        start = bisect_right(self._list, cursor, key=lambda u: self.seq[u.id])
        users = self._list[start:start + count]
        more = start + count < len(self._list)
        return users, (self.seq[users[-1].id] if more else None)

    def round(self, since: int, until: int, select: frozenset[str]) -> list[str]:
        """Ids of users changed in log[since:until] in a way the select sees, first change first."""
        key = (since, until, select)
        ids = self._rounds.get(key)
        if ids is None:
            seen: dict[str, None] = {}
            for entry in self.entries[since:until]:
                if entry.fields is None or not entry.fields.isdisjoint(select):
                    seen[entry.user_id] = None
            ids = list(seen)
            self._rounds[key] = ids
            while len(self._rounds) > _ROUNDS_KEPT:
                self._rounds.popitem(last=False)
        else:
            self._rounds.move_to_end(key)
        return ids

    def json(self, fields: tuple[str, ...], users: Sequence[User]) -> list[bytes]:
        """Each user's JSON object with exactly `fields`, encoded once per user object."""
        cache = self._json.get(fields)
        if cache is None:
            cache = self._json[fields] = {}
            while len(self._json) > _SELECTS_KEPT:
                self._json.popitem(last=False)
        else:
            self._json.move_to_end(fields)
        out = []
        for user in users:
            hit = cache.get(user.id)
            if hit is None or hit[0] is not user:
                hit = cache[user.id] = (user, self._encode(user, fields))
            out.append(hit[1])
        return out
