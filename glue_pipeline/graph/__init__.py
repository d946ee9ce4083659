"""Microsoft Graph and identity platform client."""
