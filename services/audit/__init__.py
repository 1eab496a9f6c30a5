"""The auditor: replays the event log with its own read-only consumer and checks that every quantity adds up,
every batch reached the recipient it was pledged to, and every service's hash chain is intact.

It never writes to Kafka and never joins a service's consumer group, so auditing cannot disturb the system.
"""
