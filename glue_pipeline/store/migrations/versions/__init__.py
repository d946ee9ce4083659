"""The store's schema revisions, oldest first (their names start with their sequence number)."""
