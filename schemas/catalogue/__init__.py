"""The question catalogue: one directory per catalogue version (data, not code)."""
