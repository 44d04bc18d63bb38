"""Transport backends, one package each, with the same shape: ``__init__`` declares the registry
entry (`registry.BackendEntry`: factory, settings model, description, capabilities) without
importing the protocol library; ``settings`` holds the backend's own settings section and its
validation; ``backend`` is the factory's module. A backend imports the contract, the shared
engines (`bridge.engines`) and its protocol library, never another backend.
`bridge.backends.registry` maps names to entries (built-in, registered, entry points)."""
