"""`bridge relay`: forward messages between brokers, at least once, with stable ids, an
optional ledger against duplicates after a restart, and dead letters (see `service`)."""

from bridge.migration.relay.forwarder import Forwarder, RuleStats, Side, parse_endpoint
from bridge.migration.relay.ids import ID_PROPERTY, REASON_PROPERTY, stable_id
from bridge.migration.relay.ledger import Ledger
from bridge.migration.relay.service import Relay

__all__ = ["ID_PROPERTY", "REASON_PROPERTY", "Forwarder", "Ledger", "Relay", "RuleStats",
           "Side", "parse_endpoint", "stable_id"]
