"""Settings: read from the environment (app settings in Azure) once, lazily, validated.

Nothing here runs at import. `get_settings()` loads on first use and raises `NotConfigured`
naming every bad setting (never its value); `reset_settings()` lets tests start over.
Upstream settings are checked when an action needs them (`contraforce_credential`, `d3_credential`),
so a D3-only deployment does not need ContraForce credentials and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal
from uuid import UUID

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clients.bounds import DEFAULT_MAX_UPSTREAM_BODY_BYTES
from shared.errors import NotConfigured

KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


@dataclass(frozen=True)
class BasicSettings:
    """ContraForce service account: HTTP Basic, the vendor's scheme."""

    client_id: str
    client_secret: SecretStr


@dataclass(frozen=True)
class ApiKeySettings:
    """ContraForce bearer API key."""

    api_key: SecretStr


@dataclass(frozen=True)
class EntraSettings:
    """ContraForce bearer token from azure-identity for a scope."""

    scope: str


@dataclass(frozen=True)
class D3ApiKeySettings:
    header: str
    key: SecretStr


@dataclass(frozen=True)
class D3JwtSettings:
    secret: SecretStr


ContraForceCredentialSettings = BasicSettings | ApiKeySettings | EntraSettings
D3CredentialSettings = D3ApiKeySettings | D3JwtSettings


class Settings(BaseSettings):
    """Every setting the app reads. Names are the environment variable names, upper-cased."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        populate_by_name=True,
        defer_build=True,  # validated on the first get_settings(), not at import
        hide_input_in_errors=True,  # a chained ValidationError never prints a setting's value
    )

    contraforce_base_url: HttpUrl = HttpUrl("https://portal.contraforce.com/api/v2")
    contraforce_client_id: str | None = None
    contraforce_client_secret: SecretStr | None = None
    contraforce_api_key: SecretStr | None = None
    contraforce_token_scope: str | None = None
    contraforce_rate_limit_per_second: float = Field(default=20.0, gt=0)

    d3_base_url: HttpUrl | None = None
    d3_api_key_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    d3_api_key: SecretStr | None = None
    d3_jwt_secret: SecretStr | None = None
    d3_default_username: str | None = None
    d3_default_site: str | None = None
    # Who callers may act as on D3, `user@site` comma-separated; unset: the default identity.
    d3_allowed_identities: str | None = None
    d3_rate_limit_per_second: float = Field(default=50.0, gt=0)

    # The pool under httpx: aiohttp's (httpx-aiohttp) or httpx's own httpcore (fallback).
    http_transport: Literal["aiohttp", "httpcore"] = "aiohttp"
    # One rate budget per upstream shared by every instance (an Azure Table in the app's
    # storage account); off: each instance paces alone at the full rate.
    shared_rate_budget: bool = False
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    http_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    retry_attempts: int = Field(default=5, ge=1, le=20)
    retry_budget_seconds: float = Field(default=60.0, gt=0, le=200)
    retry_initial_wait_seconds: float = Field(default=0.5, ge=0)
    retry_max_wait_seconds: float = Field(default=10.0, ge=0)
    retry_after_cap_seconds: float = Field(default=30.0, ge=0)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # An upstream's answer: at most this many bytes on the wire and after decoding its
    # Content-Encoding (a gzip bomb stops here); past it the answer is an upstream failure.
    max_upstream_body_bytes: int = Field(
        default=DEFAULT_MAX_UPSTREAM_BODY_BYTES, ge=1024, le=64 * 1_048_576
    )
    max_bulk_items: int = Field(default=100, ge=1, le=10_000)
    bulk_concurrency: int = Field(default=8, ge=1, le=256)

    # Durable path: Azure Storage queues and tables. Locally a connection string (Azurite);
    # in Azure the identity-based form the Functions host uses too.
    azure_web_jobs_storage: SecretStr | None = Field(default=None, alias="AzureWebJobsStorage")
    storage_queue_service_uri: HttpUrl | None = Field(
        default=None, alias="AzureWebJobsStorage__queueServiceUri"
    )
    storage_table_service_uri: HttpUrl | None = Field(
        default=None, alias="AzureWebJobsStorage__tableServiceUri"
    )
    storage_client_id: str | None = Field(default=None, alias="AzureWebJobsStorage__clientId")
    operations_table: str = Field(default="operations", pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$")
    idempotency_retention_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    queue_max_attempts: int = Field(default=5, ge=1, le=50)
    queue_retry_max_delay_seconds: float = Field(default=300.0, ge=0, le=3600)

    # ContraForce webhooks: signing secrets (comma-separated, several during rotation), the
    # exact Authorization header the webhook is configured to send (optional), and which
    # agent classifications unlink the incident's service ticket.
    contraforce_webhook_secrets: SecretStr | None = None
    contraforce_webhook_authorization: SecretStr | None = None
    webhook_unlink_classifications: str = "FalsePositive,BenignPositive"

    # Entra callers (App Service Authentication): client (app) ids and object ids that may
    # call, comma-separated. Empty: no Entra caller is allowed (shared/principals.py).
    allowed_principals: str = ""
    # The app's public URL (e.g. https://ila.example.net), for the `Location` of a 202. Unset,
    # `https://{WEBSITE_HOSTNAME}` in Azure, else a path: a request's Host never goes into it.
    public_base_url: HttpUrl | None = None
    # Set by App Service on every app (its default host name), never by a request: the
    # Swagger document's `host` and the `Location` of a 202.
    website_hostname: str | None = Field(
        default=None, alias="WEBSITE_HOSTNAME", pattern=r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$"
    )
    # Signs each 202's status link (shared/status_links.py), at least 32 characters; the link
    # expires with the operation's record (IDEMPOTENCY_RETENTION_HOURS). Unset, `Location`
    # names the operators' route, which needs the function key.
    status_link_secret: SecretStr | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_unresolved_key_vault_reference(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().startswith(KEY_VAULT_REFERENCE):
            raise ValueError("is an unresolved Key Vault reference")
        return value

    @field_validator(
        "contraforce_base_url",
        "d3_base_url",
        "storage_queue_service_uri",
        "storage_table_service_uri",
        "public_base_url",
    )
    @classmethod
    def _no_credentials_in_urls(cls, value: HttpUrl | None) -> HttpUrl | None:
        """A URL with userinfo (`https://user:password@host/...`) is refused: its password
        would show in dry runs and logs, and credentials have settings of their own. The error
        names the setting, never the value (pydantic's message carries no input)."""
        if value is not None and (value.username or value.password):
            raise ValueError(
                "must not carry a user name or password (user:password@); put credentials in "
                "their own settings"
            )
        return value

    @field_validator("status_link_secret")
    @classmethod
    def _status_link_secret_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("allowed_principals")
    @classmethod
    def _principal_ids(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                UUID(part)
            except ValueError:
                raise ValueError("must list Entra client or object ids (GUIDs)") from None
        return value

    def allowed_principal_ids(self) -> frozenset[str]:
        """ALLOWED_PRINCIPALS as lower-case ids."""
        return frozenset(p.strip().lower() for p in self.allowed_principals.split(",") if p.strip())

    def contraforce_credential(self) -> ContraForceCredentialSettings:
        """The one ContraForce credential configured, or `NotConfigured` naming the settings."""
        found: list[ContraForceCredentialSettings] = []
        if self.contraforce_client_id or self.contraforce_client_secret:
            if not (self.contraforce_client_id and self.contraforce_client_secret):
                raise NotConfigured(
                    "CONTRAFORCE_CLIENT_ID and CONTRAFORCE_CLIENT_SECRET must be set together",
                    settings=["CONTRAFORCE_CLIENT_ID", "CONTRAFORCE_CLIENT_SECRET"],
                )
            found.append(BasicSettings(self.contraforce_client_id, self.contraforce_client_secret))
        if self.contraforce_api_key:
            found.append(ApiKeySettings(self.contraforce_api_key))
        if self.contraforce_token_scope:
            found.append(EntraSettings(self.contraforce_token_scope))
        if len(found) != 1:
            raise NotConfigured(
                "set exactly one ContraForce credential: CONTRAFORCE_CLIENT_ID + "
                "CONTRAFORCE_CLIENT_SECRET (HTTP Basic), CONTRAFORCE_API_KEY (bearer) or "
                f"CONTRAFORCE_TOKEN_SCOPE (Entra token); found {len(found)}",
                settings=[
                    "CONTRAFORCE_CLIENT_ID",
                    "CONTRAFORCE_API_KEY",
                    "CONTRAFORCE_TOKEN_SCOPE",
                ],
            )
        return found[0]

    def d3_base(self) -> str:
        if self.d3_base_url is None:
            raise NotConfigured("D3_BASE_URL is not set", settings=["D3_BASE_URL"])
        return str(self.d3_base_url)

    def webhook_secrets(self) -> tuple[bytes, ...]:
        """The webhook signing secrets, or `NotConfigured` when none is set."""
        raw = (
            self.contraforce_webhook_secrets.get_secret_value()
            if self.contraforce_webhook_secrets
            else ""
        )
        secrets = tuple(part.strip().encode() for part in raw.split(",") if part.strip())
        if not secrets:
            raise NotConfigured(
                "CONTRAFORCE_WEBHOOK_SECRETS is not set: webhooks cannot be verified",
                settings=["CONTRAFORCE_WEBHOOK_SECRETS"],
            )
        return secrets

    def unlink_classifications(self) -> frozenset[str]:
        return frozenset(
            part.strip().lower()
            for part in self.webhook_unlink_classifications.split(",")
            if part.strip()
        )

    def d3_identities(self) -> frozenset[tuple[str, str]]:
        """The (username, site) pairs callers may act as: `D3_ALLOWED_IDENTITIES`, else only
        `D3_DEFAULT_USERNAME`@`D3_DEFAULT_SITE` (none when those are unset).

        Each entry is `user@site`, split at its last `@` so that a user may be an email address.
        """
        if self.d3_allowed_identities is None:
            if self.d3_default_username and self.d3_default_site:
                return frozenset({(self.d3_default_username, self.d3_default_site)})
            return frozenset()
        return frozenset(
            (user.strip(), site.strip())
            for user, _, site in (
                entry.rpartition("@") for entry in self.d3_allowed_identities.split(",")
            )
        )

    @field_validator("d3_allowed_identities")
    @classmethod
    def _identities_are_user_at_site(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for entry in value.split(","):
            user, _, site = entry.rpartition("@")
            if not (user.strip() and site.strip()):
                raise ValueError("must be user@site pairs separated by commas")
        return value

    def d3_credential(self) -> D3CredentialSettings:
        """The one D3 credential configured, or `NotConfigured` naming the settings."""
        header, key, secret = self.d3_api_key_header, self.d3_api_key, self.d3_jwt_secret
        if (header is None) != (key is None):
            raise NotConfigured(
                "D3_API_KEY_HEADER and D3_API_KEY must be set together",
                settings=["D3_API_KEY_HEADER", "D3_API_KEY"],
            )
        if header is not None and key is not None and secret is None:
            return D3ApiKeySettings(header, key)
        if secret is not None and key is None:
            return D3JwtSettings(secret)
        raise NotConfigured(
            "set exactly one D3 credential: D3_API_KEY_HEADER + D3_API_KEY, or D3_JWT_SECRET",
            settings=["D3_API_KEY_HEADER", "D3_API_KEY", "D3_JWT_SECRET"],
        )


def setting_name(field: str) -> str:
    """The environment variable of a Settings field (its alias, else its name upper-cased)."""
    info = Settings.model_fields.get(field)
    if info is not None:
        return info.alias or field.upper()
    if any(other.alias == field for other in Settings.model_fields.values()):
        return field  # a validation error names an aliased field by its alias
    return field.upper()


def _names_from(exc: ValidationError) -> list[str]:
    return sorted({setting_name(str(err["loc"][0])) for err in exc.errors() if err["loc"]})


@cache
def get_settings() -> Settings:
    """Load settings on first use; raise `NotConfigured` naming each invalid one."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{setting_name(str(err['loc'][0]))} {err['msg']}" for err in exc.errors() if err["loc"]
        )
        raise NotConfigured(f"invalid settings: {problems}", settings=_names_from(exc)) from exc


def reset_settings() -> None:
    """Forget loaded settings (tests, or after the environment changed)."""
    get_settings.cache_clear()
