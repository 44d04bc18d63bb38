"""The backend-independent contract: objects, messages, events, limits and the dispatcher."""
