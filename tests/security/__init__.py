"""Security suites: the declared route policy, scoping and tokens, checked against the running services."""
