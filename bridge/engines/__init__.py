"""Engines shared by backends (none of them is a backend): `mqtt` (the paho-mqtt network side
used by the ``mqtt`` and ``iothub`` backends), `problems` (what a codec had to drop while
decoding) and `netpolicy` (loopback decisions without DNS)."""
