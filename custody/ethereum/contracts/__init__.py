"""Contract sources and their committed compiled artifacts (read at run time; no compiler)."""
