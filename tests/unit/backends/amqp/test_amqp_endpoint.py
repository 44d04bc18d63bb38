"""bridge.backends.amqp.endpoint and the amqp.* settings: URLs, credentials, SASL, TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge import ConfigError, Settings
from bridge.backends.amqp.endpoint import AMQPEndpoint, connect_options, parse_url, sasl_mechanisms


@pytest.mark.parametrize(("url", "expected"), [
    ("amqp://127.0.0.1", AMQPEndpoint("amqp", "127.0.0.1", 5672)),
    ("amqps://hub.azure-devices.net", AMQPEndpoint("amqps", "hub.azure-devices.net", 5671)),
    ("AMQPS://Hub.Example:5999/devices/d1", AMQPEndpoint("amqps", "hub.example", 5999)),
    ("amqp://guest:guest@localhost:5672",
     AMQPEndpoint("amqp", "localhost", 5672, "guest", "guest")),
    ("amqp://d%40v:p%3Ass%2Fw@h", AMQPEndpoint("amqp", "h", 5672, "d@v", "p:ss/w")),
    ("amqp://user@h", AMQPEndpoint("amqp", "h", 5672, "user", None)),
    ("amqp://[::1]:5673", AMQPEndpoint("amqp", "::1", 5673)),
])
def test_parse_url(url: str, expected: AMQPEndpoint) -> None:
    assert parse_url(url) == expected


def test_address_never_carries_credentials() -> None:
    assert parse_url("amqps://u:secret@hub:5671/x").address == "amqps://hub:5671"
    assert parse_url("amqp://[::1]").address == "amqp://[::1]:5672"
    assert parse_url("amqps://hub").tls and not parse_url("amqp://hub").tls


@pytest.mark.parametrize(("url", "message"), [
    ("mqtt://broker", "unsupported URL scheme 'mqtt'"),
    ("amqp://", "has no host"),
    ("amqp://u:s3cret@host:notaport", "invalid broker URL"),
    ("hub.example", "unsupported URL scheme ''"),
])
def test_unusable_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_url(url)
    assert "s3cret" not in str(info.value)


def _options(agent_url: str = "amqps://legacy-hub.example", **amqp: Any) -> Any:
    return connect_options(Settings(backend="amqp", amqp=amqp).amqp, agent_url, "agent-7", 3)


def test_agent_url_is_used_when_no_url_is_configured() -> None:
    opts = _options("amqps://hub.example")
    assert opts.address == "amqps://hub.example:5671"
    assert opts.user is None and opts.password is None
    assert opts.mechanisms == "ANONYMOUS"  # no credentials: the CBS flow's SASL ANONYMOUS
    assert opts.tls is not None and opts.tls.verify and opts.tls.ca_file is None


def test_configured_url_replaces_the_agent_url_credentials_included() -> None:
    opts = _options("amqps://device:token@hub.example", url="amqp://127.0.0.1:5672")
    assert opts.address == "amqp://127.0.0.1:5672"
    assert opts.user is None and opts.tls is None


def test_userinfo_gives_plain_credentials_and_settings_override_them() -> None:
    opts = _options("amqp://guest:guest@127.0.0.1")
    assert (opts.user, opts.password, opts.mechanisms) == ("guest", "guest", "PLAIN")
    opts = _options("amqp://guest:guest@127.0.0.1", username="svc", password="pw")
    assert (opts.user, opts.password) == ("svc", "pw")
    opts = _options("amqp://127.0.0.1", password="pw-without-user")
    assert opts.user is None and opts.password is None


def test_sasl_mechanisms_follow_the_credentials() -> None:
    assert sasl_mechanisms("ANONYMOUS PLAIN", has_credentials=True) == "PLAIN"
    assert sasl_mechanisms("ANONYMOUS PLAIN", has_credentials=False) == "ANONYMOUS"
    assert sasl_mechanisms("PLAIN", has_credentials=False) == "PLAIN"  # the broker decides
    assert sasl_mechanisms("EXTERNAL PLAIN", has_credentials=True) == "EXTERNAL PLAIN"


def test_tls_options_only_for_amqps(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    opts = _options("amqps://hub", ca_file=str(ca), cert_file="c.pem", key_file="k.pem",
                    key_password="kp", verify=False)
    assert opts.tls is not None
    assert (opts.tls.ca_file, opts.tls.verify, opts.tls.key_password) == (ca, False, "kp")
    assert _options("amqp://hub", ca_file=str(ca)).tls is None


def test_container_id_default_and_explicit() -> None:
    first, second = _options(), _options()
    assert first.container_id.startswith("agent-7-3-")
    assert first.container_id != second.container_id  # unique per connection
    assert _options(container_id="fixed").container_id == "fixed"


def test_other_options_come_from_settings() -> None:
    opts = _options(idle_timeout=0, connect_timeout=2.5, prefetch=7, virtual_host="vhost:x",
                    allow_insecure_plain=False)
    assert (opts.idle_timeout, opts.connect_timeout, opts.prefetch) == (0, 2.5, 7)
    assert opts.virtual_host == "vhost:x" and opts.allow_insecure_plain is False


def test_repr_and_description_never_show_the_password() -> None:
    opts = _options("amqp://guest:s3cret@127.0.0.1", key_password="k3y")
    assert "s3cret" not in repr(opts) and "s3cret" not in opts.describe()
    assert "guest" in opts.describe()


def test_settings_validation_is_readable_and_hides_passwords() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(backend="amqp", amqp={"url": "mqtt://u:s3cret@h", "sasl_mechanisms": "plain",
                                       "prefetch": 0})
    text = str(info.value)
    assert "amqp.url" in text and "unsupported URL scheme 'mqtt'" in text
    assert "amqp.sasl_mechanisms" in text and "amqp.prefetch" in text
    assert "s3cret" not in text
    settings = Settings(backend="amqp", amqp={"sasl_mechanisms": "  ANONYMOUS   PLAIN "})
    assert settings.amqp.sasl_mechanisms == "ANONYMOUS PLAIN"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_BACKEND", "amqp")
    monkeypatch.setenv("BRIDGE_AMQP__URL", "amqps://hub.example")
    monkeypatch.setenv("BRIDGE_AMQP__PASSWORD", "pw")
    monkeypatch.setenv("BRIDGE_AMQP__PREFETCH", "5")
    settings = Settings()
    assert settings.amqp.url == "amqps://hub.example" and settings.amqp.prefetch == 5
    assert settings.amqp.password is not None and "pw" not in repr(settings.amqp)


def test_config_profile_is_valid() -> None:
    root = Path(__file__).resolve().parents[4]
    settings = Settings(config=str(root / "config" / "amqp.toml"))
    assert settings.backend == "amqp"
    assert settings.amqp.url == "amqp://guest:guest@127.0.0.1:5672"
