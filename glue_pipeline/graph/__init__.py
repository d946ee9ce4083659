"""Microsoft Graph and identity platform client."""

from typing import Any, TypeAlias

# A JSON object as Graph (or msal) sends it: its values are of any JSON type, so they are
# checked where they are read.
JsonObject: TypeAlias = dict[str, Any]
