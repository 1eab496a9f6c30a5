"""Bad-input suites: schemathesis against every OpenAPI document, and hand-written hostile requests."""
