"""Global steps any flow plugs in (deduplication)."""
