"""The event contract for apps outside aidtrail: an AsyncAPI 3.0 document generated from the event models.

It is generated, never written by hand, so it cannot drift from what the services publish: the payload schemas
come from the pydantic models in `shared.events`, the examples from the golden samples the tests already hold.
"""
