"""The backend-independent contract: the imp objects, messages, limits, the durable outbox and
the backend interface (`bridge.contract.backend`).

It imports nothing of the bridge but itself, `bridge.errors` and `bridge.events`: backends,
settings, dispatchers and commands are plugged in by the application layer (`bridge.agent`).
"""
