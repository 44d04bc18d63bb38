"""The MQTT engine: what the ``mqtt`` and ``iothub`` backends share.

`connection` (the wiring of one MQTT connection: driver, outbound window, inbox), `transport`
(the driver that owns the paho client on a network loop), `outbound` (window, buffer, PUBACKs),
`inbound` (subscriptions, routing, settlement), `callbacks` (paho's callbacks into those),
`bufferedsocket` (read-ahead, write-behind), `codec` (message <-> payload and user properties),
`topics` (topic filters), `endpoint` (broker URLs, client ids, backoff), `reasons` (errorDetail
texts), `stats`, `fastprops` (paho's property tables, shared).

Importing this package does not import paho; the modules that need it do.
"""
