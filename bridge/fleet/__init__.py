"""`bridge fleet`: the same agent script once per device, thousands in one process (devices
files, shards, the runner)."""
