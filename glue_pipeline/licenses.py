"""Friendly product names for common Microsoft 365 SKU part numbers (the rest keep their part
number)."""

from __future__ import annotations

FRIENDLY_NAMES = {
    "O365_BUSINESS_ESSENTIALS": "Microsoft 365 Business Basic",
    "O365_BUSINESS_PREMIUM": "Microsoft 365 Business Standard",
    "O365_BUSINESS": "Microsoft 365 Apps for business",
    "SPB": "Microsoft 365 Business Premium",
    "SMB_BUSINESS_PREMIUM": "Microsoft 365 Business Premium",
    "STANDARDPACK": "Office 365 E1",
    "ENTERPRISEPACK": "Office 365 E3",
    "ENTERPRISEPREMIUM": "Office 365 E5",
    "SPE_E3": "Microsoft 365 E3",
    "SPE_E5": "Microsoft 365 E5",
    "SPE_F1": "Microsoft 365 F3",
    "DESKLESSPACK": "Office 365 F3",
    "EXCHANGESTANDARD": "Exchange Online (Plan 1)",
    "EXCHANGEENTERPRISE": "Exchange Online (Plan 2)",
    "EXCHANGEDESKLESS": "Exchange Online Kiosk",
    "EXCHANGEARCHIVE_ADDON": "Exchange Online Archiving",
    "FLOW_FREE": "Microsoft Power Automate Free",
    "POWER_BI_STANDARD": "Power BI (free)",
    "POWER_BI_PRO": "Power BI Pro",
    "PROJECTPROFESSIONAL": "Project Plan 3",
    "VISIOCLIENT": "Visio Plan 2",
    "AAD_PREMIUM": "Microsoft Entra ID P1",
    "AAD_PREMIUM_P2": "Microsoft Entra ID P2",
    "EMS": "Enterprise Mobility + Security E3",
    "INTUNE_A": "Intune Plan 1",
    "TEAMS_EXPLORATORY": "Microsoft Teams Exploratory",
    "Microsoft_Teams_Essentials": "Microsoft Teams Essentials",
    "MCOEV": "Microsoft Teams Phone Standard",
    "MCOMEETADV": "Microsoft 365 Audio Conferencing",
    "WINDOWS_STORE": "Windows Store for Business",
    "DEVELOPERPACK_E5": "Microsoft 365 E5 Developer",
}


def friendly_name(part_number: str | None) -> str | None:
    if part_number is None:
        return None
    return FRIENDLY_NAMES.get(part_number, part_number)
