"""Use cases: each takes a Session first, owns its commits, raises typed errors; no Flask."""
