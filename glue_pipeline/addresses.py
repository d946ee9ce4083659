"""A Microsoft user's email addresses: the UPN, `mail` and the smtp proxy addresses.

A proxy address is TYPE:address. Exchange writes a mailbox's primary address as `SMTP:` and its
aliases as `smtp:`; other types (`SIP:`, `X500:`, `EUM:`) are not email addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from glue_pipeline.vocabulary import AddressSource


def parse_proxy(proxy: object) -> tuple[str, str] | None:
    """(type, address) of a proxy address: 'SMTP:Ann@contoso.com' -> ('SMTP', 'Ann@contoso.com');
    None for text without a type."""
    kind, colon, address = str(proxy).partition(":")
    return (kind, address) if colon else None


def smtp_address(proxy: object) -> str | None:
    """The address of an smtp proxy address, primary or alias, as written; None for other types."""
    parsed = parse_proxy(proxy)
    return parsed[1] if parsed is not None and parsed[0].lower() == "smtp" else None


def email_address(entry: str) -> str | None:
    """The address an entry names when it may be a plain address or a proxy address: a plain
    address as it is, an smtp proxy's address; None for other proxy types."""
    return entry if ":" not in entry else smtp_address(entry)


def smtp_addresses(proxy_addresses: object) -> list[str]:
    """The smtp addresses of a user's proxy addresses, in order, as written (none unless a list)."""
    if not isinstance(proxy_addresses, list):
        return []
    return [address for address in map(smtp_address, proxy_addresses) if address is not None]


def user_addresses(user: Mapping[str, object]) -> list[tuple[AddressSource, str]]:
    """(source, address) in match order, as written: ("upn", the UPN), ("mail", `mail`) when set,
    then ("proxy", each smtp proxy address)."""
    out: list[tuple[AddressSource, str]] = [("upn", str(user["user_principal_name"]))]
    if user.get("mail"):
        out.append(("mail", str(user["mail"])))
    return out + [("proxy", address) for address in smtp_addresses(user.get("proxy_addresses"))]


def aliases(addresses: Iterable[str], primary: str, *, fold_case: bool = True) -> list[str]:
    """The addresses other than the primary one (case ignored), in order, each once; with
    fold_case, addresses that differ only in case are one (the first is kept)."""
    kept: dict[str, str] = {}
    for address in addresses:
        if address.lower() != primary.lower():
            kept.setdefault(address.lower() if fold_case else address, address)
    return list(kept.values())
