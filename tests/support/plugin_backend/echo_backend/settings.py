from pydantic import Field, SecretStr

from bridge.settings_base import Section


class EchoSettings(Section):
    """The echo test backend."""

    greeting: str = Field("hello", min_length=1, description="Added to every echoed message.")
    token: SecretStr | None = Field(None, description="A secret (never shown).")
