"""Graph's directory objects as the sandbox serves them: the entity sets (their properties and
default $select) and each object built from the world."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from .odata import EntitySet, json_bytes
from .world import Domain, Tenant, User

# SKUs that include Entra ID P1 or P2, which signInActivity needs.
ENTRA_PREMIUM_SKUS = frozenset({"SPB", "SPE_E3", "SPE_E5", "AAD_PREMIUM", "AAD_PREMIUM_P2", "EMS",
                                "EMSPREMIUM", "SPE_F1", "M365_F1", "IDENTITY_THREAT_PROTECTION"})

_USER_DEFAULT = ("businessPhones", "displayName", "givenName", "id", "jobTitle", "mail", "mobilePhone",
                 "officeLocation", "preferredLanguage", "surname", "userPrincipalName")
_USER_NULLS = {"department": None, "companyName": None, "employeeId": None, "usageLocation": None,
               "onPremisesSyncEnabled": None, "onPremisesImmutableId": None, "otherMails": []}
USERS = EntitySet("users", "microsoft.graph.user",
                  (*_USER_DEFAULT, "accountEnabled", "userType", "proxyAddresses", "assignedLicenses",
                   "createdDateTime", "lastPasswordChangeDateTime", "signInActivity", *_USER_NULLS),
                  _USER_DEFAULT)
_CONTRACT_FIELDS = ("id", "contractType", "customerId", "defaultDomainName", "displayName")
CONTRACTS = EntitySet("contracts", "microsoft.graph.contract", _CONTRACT_FIELDS, _CONTRACT_FIELDS)
_GDAP_FIELDS = ("id", "tenantId", "displayName")
GDAP_CUSTOMERS = EntitySet("tenantRelationships/delegatedAdminCustomers",
                           "microsoft.graph.delegatedAdminCustomer", _GDAP_FIELDS, _GDAP_FIELDS)
_ORG_FIELDS = ("id", "displayName", "tenantType", "verifiedDomains", "countryLetterCode", "city", "state",
               "postalCode", "street", "businessPhones")
ORGANIZATION = EntitySet("organization", "microsoft.graph.organization", _ORG_FIELDS, _ORG_FIELDS)
_DOMAIN_FIELDS = ("id", "authenticationType", "isAdminManaged", "isDefault", "isInitial", "isRoot",
                  "isVerified", "supportedServices")
DOMAINS = EntitySet("domains", "microsoft.graph.domain", _DOMAIN_FIELDS, _DOMAIN_FIELDS)
_SKU_FIELDS = ("id", "accountId", "appliesTo", "capabilityStatus", "consumedUnits", "prepaidUnits",
               "servicePlans", "skuId", "skuPartNumber")
SUBSCRIBED_SKUS = EntitySet("subscribedSkus", "microsoft.graph.subscribedSku", _SKU_FIELDS, _SKU_FIELDS)


def user_resource(user: User) -> dict[str, Any]:
    return {**_USER_NULLS, **user.model_dump(mode="json", exclude={"mailbox"})}


def encode_user(user: User, fields: tuple[str, ...]) -> bytes:
    row = user_resource(user)
    return json_bytes({f: row.get(f) for f in fields})


def contract(tenant: Tenant) -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"contract/{tenant.id}")), "contractType": "ResellerPartner",
            "customerId": tenant.id, "defaultDomainName": tenant.default_domain, "displayName": tenant.display_name}


def gdap_customer(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "tenantId": tenant.id, "displayName": tenant.display_name}


def organization(tenant: Tenant) -> dict[str, Any]:
    verified = [{"name": d.name, "isDefault": d.is_default, "isInitial": d.is_initial, "type": "Managed",
                 "capabilities": "Email, OfficeCommunicationsOnline"} for d in tenant.domains if d.is_verified]
    return {"id": tenant.id, "displayName": tenant.display_name, "tenantType": "AAD", "verifiedDomains": verified,
            "countryLetterCode": tenant.country_letter_code, "city": tenant.city, "state": tenant.state,
            "postalCode": tenant.postal_code, "street": tenant.street,
            "businessPhones": [tenant.phone] if tenant.phone else []}


def domain(d: Domain) -> dict[str, Any]:
    return {"id": d.name, "authenticationType": "Managed", "isAdminManaged": True, "isDefault": d.is_default,
            "isInitial": d.is_initial, "isRoot": True, "isVerified": d.is_verified, "supportedServices": ["Email"]}


def subscribed_skus(tenant: Tenant) -> list[dict[str, Any]]:
    consumed = Counter(lic.skuId for u in tenant.users for lic in u.assignedLicenses)
    return [{"id": f"{tenant.id}_{s.skuId}", "accountId": tenant.id, "appliesTo": s.appliesTo,
             "capabilityStatus": s.capabilityStatus, "consumedUnits": consumed[s.skuId],
             "prepaidUnits": {"enabled": s.enabled, "suspended": s.suspended, "warning": s.warning,
                              "lockedOut": s.lockedOut},
             "servicePlans": [], "skuId": s.skuId, "skuPartNumber": s.skuPartNumber} for s in tenant.skus]


def has_entra_premium(tenant: Tenant) -> bool:
    return any(s.skuPartNumber in ENTRA_PREMIUM_SKUS and s.enabled + s.warning > 0 for s in tenant.skus)
