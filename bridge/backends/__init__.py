"""Transport backends. Each one imports the contract and its own protocol library, never another
backend; `bridge.backends.base` holds the small interface they implement and the name registry."""
