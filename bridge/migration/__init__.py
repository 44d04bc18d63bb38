"""Staged migration: per-address `routing` (pure), the `routed` backend (one connection over
several backends by path), `shadow` sending with its divergence report, and the `relay` service
(`bridge relay`) between an AMQP and an MQTT broker. `settings` holds their sections."""
