"""The Bicep templates keep the deployment's promises, and these tests notice when they stop.

Each rule in tests/infra/templates.py runs on the real templates (no problems) and on copies of
their text with one regression written in (the rule names it): `make test` fails if someone sets
httpsOnly: false, adds a shared-key connection string, adds an app setting the code does not read,
or adds a Settings field the template does not set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from shared import storage
from shared.config import Settings
from tests.functions.conftest import registered
from tests.infra import templates
from tests.infra.templates import (
    INFRA,
    MAIN,
    NOT_SET_IN_AZURE,
    ROOT,
    Templates,
)

# Flex Consumption: "Currently the lowest maximum instance count value is 40" (MicrosoftDocs
# azure-docs, articles/azure-functions/event-driven-scaling.md, Flex Consumption section; a later
# revision says 1 in some regions) and every Microsoft Flex sample declares @minValue(40)
# (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep).
LOWEST_MAXIMUM_INSTANCE_COUNT = 40
# 512 MB is documented but was refused by Microsoft.Web/sites@2024-04-01
# (https://github.com/Azure/azure-rest-api-specs/issues/40898); the Microsoft samples allow
# 2048 and 4096 only, and so does the template.
ACCEPTED_MEMORY_MB = {2048, 4096}

SECRET_NAME = re.compile(r"SECRET|PASSWORD|AUTHORIZATION|_KEY$|_TOKEN$")


def env_names() -> dict[str, bool]:
    """Every environment variable shared.config.Settings reads, and whether it holds a secret."""
    return {
        field.alias or name.upper(): "SecretStr" in str(field.annotation)
        for name, field in Settings.model_fields.items()
    }


def expected_settings() -> set[str]:
    return set(env_names()) - set(NOT_SET_IN_AZURE)


def secret_settings(t: Templates) -> set[str]:
    """Secrets: SecretStr fields of Settings, and any setting whose name says it is one."""
    typed = {name for name, secret in env_names().items() if secret}
    named = {name for name, _ in t.app_settings() if SECRET_NAME.search(name)}
    return (typed | named) - set(NOT_SET_IN_AZURE)


def azd_service() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    services: dict[str, Any] = config["services"]
    assert len(services) == 1, services
    name, service = next(iter(services.items()))
    return {"name": name, **service}


def unauthenticated_paths() -> set[str]:
    """What Easy Auth must let through without a token: the app's anonymous routes, and the
    ContraForce webhook (signed by ContraForce, which sends no Entra token)."""
    found = set()
    for function in registered().values():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if (
                binding["type"] == "httpTrigger"
                and (
                    binding["authLevel"].lower() == "anonymous"
                    or binding["route"] == "webhooks/contraforce"
                )
                and "{" not in binding["route"]
            ):
                # excludedPaths are literal: a route template matches nothing there. The
                # signed status route stays behind Easy Auth (a Logic App re-sends its
                # managed identity's token on each poll).
                found.add(f"/api/{binding['route']}")
    return found


def storage_names() -> tuple[set[str], set[str]]:
    """The queues and table the code uses."""
    table = Settings.model_fields["operations_table"].default
    return {storage.QUEUE_NAME, storage.POISON_QUEUE_NAME}, {str(table)}


Rule = Callable[[Templates], list[str]]

RULES: dict[str, Rule] = {
    "flex_consumption_plan": templates.flex_consumption_plan,
    "function_app": templates.function_app,
    "azd_service_tag": lambda t: templates.azd_service_tag(t, azd_service()["name"]),
    "storage_account": lambda t: templates.storage_account(t, *storage_names()),
    "no_shared_keys": templates.no_shared_keys,
    "key_vault": templates.key_vault,
    "application_insights": templates.application_insights,
    "role_assignments": templates.role_assignments,
    "app_settings": lambda t: templates.app_settings(t, expected_settings(), secret_settings(t)),
    "flex_scale": lambda t: templates.flex_scale(
        t, lowest_maximum=LOWEST_MAXIMUM_INSTANCE_COUNT, memory_sizes=ACCEPTED_MEMORY_MB
    ),
    "easy_auth": lambda t: templates.easy_auth(t, unauthenticated_paths()),
}


def mutated(sources: dict[str, str], file: str, old: str, new: str) -> Templates:
    text = sources[file]
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
    return Templates.parse({**sources, file: text.replace(old, new)})


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_templates_keep_the_rule(real: Templates, rule: str) -> None:
    assert RULES[rule](real) == []


def test_every_template_parses_with_current_pycep(real: Templates) -> None:
    assert sorted(real.parsed) == [
        "main.bicep",
        "modules/keyvault.bicep",
        "modules/monitoring.bicep",
        "modules/observability.bicep",
        "modules/roles.bicep",
        "modules/storage.bicep",
    ]
    for file, parsed in real.parsed.items():
        assert parsed.get("resources"), f"{file} declares no resources"


APP_SETTING = (
    "        {\n          name: 'D3_DEFAULT_SITE'\n          value: d3DefaultSite\n        }\n"
)
SHARED_KEY_SETTING = (
    "        {\n          name: 'AzureWebJobsStorage'\n"
    "          value: 'DefaultEndpointsProtocol=https;"
    "AccountName=${storage.outputs.storageAccountName};AccountKey=${storageKey}'\n        }\n"
)
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"

# (rule, file, text, replacement, words the rule's complaint must contain)
REGRESSIONS = {
    "httpsOnly false": ("function_app", MAIN, "httpsOnly: true", "httpsOnly: false", "httpsOnly"),
    "TLS 1.0": (
        "function_app",
        MAIN,
        "      minTlsVersion: '1.2'",
        "      minTlsVersion: '1.0'",
        "minTlsVersion",
    ),
    "ftpsState set (refused on Flex)": (
        "function_app",
        MAIN,
        "      scmMinTlsVersion: '1.2'\n",
        "      scmMinTlsVersion: '1.2'\n      ftpsState: 'Disabled'\n",
        "ftpsState is refused",
    ),
    "platform CORS beside the app's header": (
        "function_app",
        MAIN,
        "      scmMinTlsVersion: '1.2'\n",
        (
            "      scmMinTlsVersion: '1.2'\n      cors: {\n        allowedOrigins: [\n"
            "          'https://portal.azure.com'\n        ]\n      }\n"
        ),
        "siteConfig.cors",
    ),
    "remote debugging": (
        "function_app",
        MAIN,
        "remoteDebuggingEnabled: false",
        "remoteDebuggingEnabled: true",
        "remoteDebugging",
    ),
    "basic auth publishing": (
        "function_app",
        MAIN,
        "name: 'scm'\n  properties: {\n    allow: false",
        "name: 'scm'\n  properties: {\n    allow: true",
        "scm",
    ),
    "python 3.12": ("function_app", MAIN, "version: '3.11'", "version: '3.12'", "runtime"),
    "fixed instance count": (
        "function_app",
        MAIN,
        "maximumInstanceCount: maximumInstanceCount",
        "maximumInstanceCount: 40",
        "maximumInstanceCount",
    ),
    "deployment by connection string": (
        "function_app",
        MAIN,
        "type: 'UserAssignedIdentity'",
        "type: 'StorageAccountConnectionString'",
        "deployment storage",
    ),
    "consumption plan": ("flex_consumption_plan", MAIN, "name: 'FC1'", "name: 'Y1'", "FC1"),
    "wrong azd service": (
        "azd_service_tag",
        MAIN,
        "'azd-service-name': 'api'",
        "'azd-service-name': 'web'",
        "azd-service-name",
    ),
    "shared keys on": (
        "storage_account",
        "modules/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: true",
        "allowSharedKeyAccess",
    ),
    "public blobs": (
        "storage_account",
        "modules/storage.bicep",
        "allowBlobPublicAccess: false",
        "allowBlobPublicAccess: true",
        "allowBlobPublicAccess",
    ),
    "storage TLS 1.0": (
        "storage_account",
        "modules/storage.bicep",
        "minimumTlsVersion: 'TLS1_2'",
        "minimumTlsVersion: 'TLS1_0'",
        "minimumTlsVersion",
    ),
    "renamed queue": (
        "storage_account",
        MAIN,
        "var queueName = 'link-actions'",
        "var queueName = 'actions'",
        "queues",
    ),
    "account key connection string": (
        "no_shared_keys",
        MAIN,
        APP_SETTING,
        APP_SETTING + SHARED_KEY_SETTING,
        "accountkey=",
    ),
    "listKeys": (
        "no_shared_keys",
        MAIN,
        "var compactName =",
        "var key = storage.listKeys().keys[0].value\nvar compactName =",
        "listkeys(",
    ),
    "access policies": (
        "key_vault",
        "modules/keyvault.bicep",
        "enableRbacAuthorization: true",
        "enableRbacAuthorization: false",
        "enableRbacAuthorization",
    ),
    "no purge protection": (
        "key_vault",
        "modules/keyvault.bicep",
        "enablePurgeProtection: true",
        "enablePurgeProtection: false",
        "enablePurgeProtection",
    ),
    "local auth telemetry": (
        "application_insights",
        "modules/monitoring.bicep",
        "    DisableLocalAuth: true",
        "    DisableLocalAuth: false",
        "DisableLocalAuth",
    ),
    "contributor role": (
        "role_assignments",
        "modules/roles.bicep",
        "'3913510d-42f4-4e42-8a64-420c390055eb'",
        f"'{CONTRIBUTOR}'",
        "not one of the app's roles",
    ),
    "role at resource group": (
        "role_assignments",
        "modules/roles.bicep",
        "  scope: vault\n",
        "",
        "must be scoped",
    ),
    "extra app setting": (
        "app_settings",
        MAIN,
        APP_SETTING,
        APP_SETTING + APP_SETTING.replace("D3_DEFAULT_SITE", "D3_DEFAULT_REGION"),
        "D3_DEFAULT_REGION is not read",
    ),
    "missing app setting": ("app_settings", MAIN, APP_SETTING, "", "does not set D3_DEFAULT_SITE"),
    "shared-key host storage": (
        "app_settings",
        MAIN,
        APP_SETTING,
        APP_SETTING + SHARED_KEY_SETTING,
        "AzureWebJobsStorage is not read",
    ),
    "inlined secret": (
        "app_settings",
        MAIN,
        "'@Microsoft.KeyVault(SecretUri=${secretUriPrefix}d3-api-key/)'",
        "d3ApiKeyHeader",
        "secret D3_API_KEY",
    ),
    "versioned or foreign reference": (
        "app_settings",
        MAIN,
        "${secretUriPrefix}d3-jwt-secret/)",
        "https://other.vault.azure.net/secrets/d3-jwt-secret/)",
        "secret D3_JWT_SECRET",
    ),
    "FUNCTIONS_EXTENSION_VERSION": (
        "app_settings",
        MAIN,
        APP_SETTING,
        APP_SETTING + APP_SETTING.replace("D3_DEFAULT_SITE", "FUNCTIONS_EXTENSION_VERSION"),
        "FUNCTIONS_EXTENSION_VERSION is not read",
    ),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_a_regression_breaks_the_rule(sources: dict[str, str], case: str) -> None:
    rule, file, old, new, complaint = REGRESSIONS[case]
    problems = RULES[rule](mutated(sources, file, old, new))
    assert problems, f"{rule} did not notice: {case}"
    assert any(complaint.lower() in problem.lower() for problem in problems), problems


def test_a_settings_field_the_template_does_not_set_fails(real: Templates) -> None:
    problems = templates.app_settings(
        real, expected_settings() | {"NEW_SETTING"}, secret_settings(real)
    )
    assert problems == ["the template does not set NEW_SETTING, which the app reads"]


def test_a_new_secret_field_must_come_from_key_vault(real: Templates) -> None:
    problems = templates.app_settings(
        real, expected_settings(), secret_settings(real) | {"D3_BASE_URL"}
    )
    assert problems == ["secret D3_BASE_URL must be a Key Vault reference (or empty), is d3BaseUrl"]


def test_the_secrets_are_the_settings_typed_secret(real: Templates) -> None:
    assert secret_settings(real) == {name for name, secret in env_names().items() if secret} - set(
        NOT_SET_IN_AZURE
    )


def test_every_key_vault_secret_has_its_set_command_documented(real: Templates) -> None:
    deploy = (ROOT / "README.md").read_text(encoding="utf-8")
    referenced = templates.key_vault_references(real)
    assert referenced
    for secret in referenced:
        assert f"--name {secret} " in deploy, f"the deploy docs do not show how to set {secret}"
    keyvault = real.sources["modules/keyvault.bicep"]
    assert all(secret in keyvault for secret in referenced), "keyvault.bicep lists the secret names"


def test_azure_yaml_deploys_this_directory_as_a_python_function_app() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    service = azd_service()
    assert service == {"name": "api", "project": ".", "language": "python", "host": "function"}


def test_the_parameters_file_names_only_template_parameters(real: Templates) -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    declared = real.main["parameters"]
    unknown = set(document["parameters"]) - set(declared)
    assert not unknown, f"main.parameters.json sets parameters main.bicep lacks: {sorted(unknown)}"
    for name, entry in document["parameters"].items():
        assert set(entry) == {"value"}, f"{name}: plain values only (no Key Vault references here)"
