"""The Bicep templates under infra/, parsed with pycep, and the rules they must keep.

Every rule is a function from `Templates` to a list of problems (empty: the rule holds), so the
tests can run each rule on the real templates and on deliberately broken copies of their text.

pycep turns a Bicep file into nested dicts. Two quirks matter here: identifiers and string
literals both come out as plain `str` (`value: foo` and `value: 'foo'` look alike), and
`a == 'b' ? x : y` comes out as `a == ('b' ? x : y)`; `outcomes()` deals with the second.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = "main.bicep"

# App settings the Functions platform or its SDKs read, which shared.config.Settings does not.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName": "host storage, identity-based",
    "AzureWebJobsStorage__blobServiceUri": "host storage, identity-based",
    "AzureWebJobsStorage__queueServiceUri": "host storage and queue trigger, identity-based",
    "AzureWebJobsStorage__tableServiceUri": "host storage, identity-based",
    "AzureWebJobsStorage__credential": "host storage: managedidentity",
    "AzureWebJobsStorage__clientId": "host storage: which identity",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry destination",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra-authenticated telemetry",
    "AZURE_CLIENT_ID": "azure-identity's DefaultAzureCredential: the user-assigned identity",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "the Python worker sets up OpenTelemetry",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "no httpx spans: the app makes one per attempt",
    "PYDANTIC_DISABLE_PLUGINS": "no pydantic plugin scan on a cold start (the app uses none)",
}

# Fields of Settings the template must not set, with the reason.
NOT_SET_IN_AZURE = {
    "AzureWebJobsStorage": "a connection string (Azurite, locally); Azure uses the identity-based"
    " AzureWebJobsStorage__* settings, and a connection string would carry an account key",
    "WEBSITE_HOSTNAME": "App Service sets it (the app's default host name); an app setting would"
    " only go stale",
    "PUBLIC_BASE_URL": "only for a custom domain: unset, a 202's Location is built from"
    " WEBSITE_HOSTNAME",
}

# Built-in role definitions the app's identity holds, each on one resource type.
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": (
        "Storage Blob Data Owner",
        "Microsoft.Storage/storageAccounts",
    ),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": (
        "Storage Queue Data Contributor",
        "Microsoft.Storage/storageAccounts",
    ),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": (
        "Storage Table Data Contributor",
        "Microsoft.Storage/storageAccounts",
    ),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "Microsoft.KeyVault/vaults"),
    "3913510d-42f4-4e42-8a64-420c390055eb": (
        "Monitoring Metrics Publisher",
        "Microsoft.Insights/components",
    ),
}

KEY_VAULT_REFERENCE = re.compile(
    r"@Microsoft\.KeyVault\(SecretUri=\$\{secretUriPrefix\}([a-z0-9-]+)/\)"
)
SECRET_URI_PREFIX = "${keyVault.outputs.keyVaultUri}secrets/"
# Text that means a storage account key or SAS is in play somewhere.
SHARED_KEY_MARKERS = (
    "accountkey=",
    "listkeys(",
    "listaccountsas(",
    "listservicesas(",
    "sharedaccesssignature=",
)
COMPARISONS = {"equals", "not_equals", "equals_case_insensitive", "not_equals_case_insensitive"}

Node = Any


@dataclass(frozen=True)
class Resource:
    file: str
    name: str
    type: str
    existing: bool
    config: dict[str, Any]

    def get(self, *path: str) -> Node:
        """The value at `path` under the resource's body, or None."""
        node: Node = self.config
        for key in path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node


@dataclass(frozen=True)
class Templates:
    sources: dict[str, str]
    parsed: dict[str, dict[str, Any]]

    @classmethod
    def parse(cls, sources: dict[str, str]) -> Templates:
        parser = BicepParser()
        parsed = {
            name: cast(dict[str, Any], parser.parse(text=text)) for name, text in sources.items()
        }
        return cls(sources=sources, parsed=parsed)

    @property
    def main(self) -> dict[str, Any]:
        return self.parsed[MAIN]

    def resources(self, type_: str | None = None) -> Iterator[Resource]:
        for file, parsed in self.parsed.items():
            for name, resource in parsed.get("resources", {}).items():
                if type_ is not None and resource["type"] != type_:
                    continue
                config = resource["config"]
                # `resource x '...' = if (cond) { ... }`: the body is one level down.
                if isinstance(config, dict) and "condition" in config and "config" in config:
                    config = config["config"]
                yield Resource(file, name, resource["type"], resource["existing"], config)

    def created(self, type_: str) -> list[Resource]:
        """Resources of `type_` the templates create (not `existing` references)."""
        return [resource for resource in self.resources(type_) if not resource.existing]

    def variable(self, file: str, name: str) -> Node:
        return self.parsed[file].get("variables", {}).get(name, {}).get("value")

    def app_settings(self) -> list[tuple[str, Node]]:
        """(name, value) of every app setting on the function app, in order."""
        sites = self.created("Microsoft.Web/sites")
        if len(sites) != 1:
            return []
        settings = sites[0].get("properties", "siteConfig", "appSettings") or []
        return [(item.get("name"), item.get("value")) for item in settings]


def read_sources(directory: Path = INFRA) -> dict[str, str]:
    """Every .bicep file under `directory`, by path relative to it ('modules/x.bicep')."""
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*.bicep"))
    }


def render(node: Node) -> str:
    """An expression as compact text, for comparisons and messages: `identity.properties.id`."""
    if isinstance(node, bool):
        return str(node).lower()
    if node is None or isinstance(node, int | str):
        return "null" if node is None else str(node)
    if isinstance(node, list):
        return "[" + ", ".join(render(item) for item in node) + "]"
    if isinstance(node, dict) and "operator" in node:
        kind = node["operator"]["type"]
        operands = node["operator"]["operands"]
        if kind == "property_accessor":
            return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
        if kind == "conditional":
            return (
                f"({render(operands['condition'])} ? {render(operands['true_value'])}"
                f" : {render(operands['false_value'])})"
            )
        values = operands.values() if isinstance(operands, dict) else [operands]
        return f"{kind}({', '.join(render(value) for value in values)})"
    if isinstance(node, dict) and "function" in node:
        kind = node["function"]["type"]
        arguments = node["function"].get("parameters") or {}
        shown = [render(value) for value in arguments.values() if value is not None]
        return f"{kind}({', '.join(shown)})"
    if isinstance(node, dict):
        return "{" + ", ".join(f"{key}: {render(value)}" for key, value in node.items()) + "}"
    return repr(node)


def _is_conditional(node: Node) -> bool:
    return isinstance(node, dict) and node.get("operator", {}).get("type") == "conditional"


def outcomes(node: Node) -> list[Node]:
    """The values an expression can end up as: both branches of every `?:`, else itself."""
    if _is_conditional(node):
        operands = node["operator"]["operands"]
        return outcomes(operands["true_value"]) + outcomes(operands["false_value"])
    if isinstance(node, dict) and node.get("operator", {}).get("type") in COMPARISONS:
        inner = node["operator"]["operands"].get("operand_2")
        if _is_conditional(inner):  # pycep reads `a == 'b' ? x : y` as `a == ('b' ? x : y)`
            return outcomes(inner)
    return [node]


def _expect(problems: list[str], what: str, actual: Node, *, want: Node) -> None:
    if actual != want:
        problems.append(f"{what} is {render(actual)}, expected {render(want)}")


# ----------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------


def flex_consumption_plan(t: Templates) -> list[str]:
    problems: list[str] = []
    plans = t.created("Microsoft.Web/serverfarms")
    if len(plans) != 1:
        return [f"expected one App Service plan, found {len(plans)}"]
    plan = plans[0]
    _expect(problems, "plan sku.name", plan.get("sku", "name"), want="FC1")
    _expect(problems, "plan sku.tier", plan.get("sku", "tier"), want="FlexConsumption")
    _expect(
        problems, "plan properties.reserved (Linux)", plan.get("properties", "reserved"), want=True
    )
    return problems


def function_app(t: Templates) -> list[str]:
    problems: list[str] = []
    sites = t.created("Microsoft.Web/sites")
    if len(sites) != 1:
        return [f"expected one function app, found {len(sites)}"]
    site = sites[0]
    _expect(problems, "site kind", site.get("kind"), want="functionapp,linux")
    _expect(problems, "httpsOnly", site.get("properties", "httpsOnly"), want=True)
    config = site.get("properties", "siteConfig") or {}
    _expect(problems, "siteConfig.minTlsVersion", config.get("minTlsVersion"), want="1.2")
    _expect(problems, "siteConfig.scmMinTlsVersion", config.get("scmMinTlsVersion"), want="1.2")
    if "ftpsState" in config:
        problems.append(
            "siteConfig.ftpsState is refused on Flex Consumption (ARM error 51021); FTP is off "
            "through basicPublishingCredentialsPolicies/ftp"
        )
    if "cors" in config:
        problems.append(
            "siteConfig.cors is set: platform CORS would replace the Access-Control-Allow-Origin "
            "the app sends on its API documents (choose one; the app's header is the choice)"
        )
    _expect(
        problems,
        "siteConfig.remoteDebuggingEnabled",
        config.get("remoteDebuggingEnabled"),
        want=False,
    )
    banned = ("linuxFxVersion", "alwaysOn", "use32BitWorkerProcess")
    problems += [
        f"siteConfig.{key} is not for Flex Consumption apps" for key in banned if key in config
    ]

    app_config = site.get("properties", "functionAppConfig") or {}
    _expect(
        problems,
        "functionAppConfig.runtime",
        app_config.get("runtime"),
        want={"name": "python", "version": "3.11"},
    )
    scale = app_config.get("scaleAndConcurrency") or {}
    parameters = t.main.get("parameters", {})
    for key in ("maximumInstanceCount", "instanceMemoryMB"):
        _expect(problems, f"scaleAndConcurrency.{key}", scale.get(key), want=key)
        if parameters.get(key, {}).get("type") != "int":
            problems.append(f"{key} must be an int parameter of {MAIN}")
    storage = app_config.get("deployment", {}).get("storage", {})
    _expect(problems, "deployment storage type", storage.get("type"), want="blobContainer")
    _expect(
        problems,
        "deployment storage authentication",
        render(storage.get("authentication")),
        want="{type: UserAssignedIdentity, userAssignedIdentityResourceId: identity.id}",
    )

    _expect(problems, "site identity type", site.get("identity", "type"), want="UserAssigned")
    _expect(
        problems,
        "keyVaultReferenceIdentity",
        render(site.get("properties", "keyVaultReferenceIdentity")),
        want="identity.id",
    )
    for policy in ("ftp", "scm"):
        found = [
            r
            for r in t.created("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
            if r.get("name") == policy
        ]
        if len(found) != 1 or found[0].get("properties", "allow") is not False:
            problems.append(
                f"basicPublishingCredentialsPolicies '{policy}' must exist with allow: false"
            )
    if "FUNCTIONS_EXTENSION_VERSION" in dict(t.app_settings()):
        problems.append("FUNCTIONS_EXTENSION_VERSION is not used on Flex Consumption")
    return problems


def azd_service_tag(t: Templates, service: str) -> list[str]:
    sites = t.created("Microsoft.Web/sites")
    tags = render(sites[0].get("tags")) if sites else ""
    if f"'azd-service-name': {service}" not in tags:
        return [f"the function app is not tagged azd-service-name: {service} (tags: {tags})"]
    return []


def storage_account(t: Templates, queues: set[str], tables: set[str]) -> list[str]:
    problems: list[str] = []
    accounts = t.created("Microsoft.Storage/storageAccounts")
    if len(accounts) != 1:
        return [f"expected one storage account, found {len(accounts)}"]
    props = accounts[0].get("properties") or {}
    _expect(problems, "storage minimumTlsVersion", props.get("minimumTlsVersion"), want="TLS1_2")
    _expect(problems, "storage allowSharedKeyAccess", props.get("allowSharedKeyAccess"), want=False)
    _expect(
        problems, "storage allowBlobPublicAccess", props.get("allowBlobPublicAccess"), want=False
    )
    _expect(
        problems,
        "storage supportsHttpsTrafficOnly",
        props.get("supportsHttpsTrafficOnly"),
        want=True,
    )
    for container in t.created("Microsoft.Storage/storageAccounts/blobServices/containers"):
        _expect(
            problems,
            f"container {container.name} publicAccess",
            container.get("properties", "publicAccess"),
            want="None",
        )

    module = t.main.get("modules", {}).get("storage", {}).get("config", {}).get("params", {})
    variables = {name: t.variable(MAIN, name) for name in ("queueName", "operationsTableName")}

    def resolve(name: str) -> str:
        """A queue or table name in storage.bicep, with main.bicep's values filled in."""
        for param, value in module.items():
            name = name.replace(f"${{{param}}}", str(variables.get(str(value), value)))
            if name == param:
                name = str(variables.get(str(value), value))
        return name

    found_queues = {
        resolve(str(q.get("name")))
        for q in t.created("Microsoft.Storage/storageAccounts/queueServices/queues")
    }
    found_tables = {
        resolve(str(q.get("name")))
        for q in t.created("Microsoft.Storage/storageAccounts/tableServices/tables")
    }
    _expect(problems, "queues", sorted(found_queues), want=sorted(queues))
    _expect(problems, "tables", sorted(found_tables), want=sorted(tables))
    return problems


def no_shared_keys(t: Templates) -> list[str]:
    problems = []
    for file, text in t.sources.items():
        lowered = text.lower()
        problems += [
            f"{file} contains {marker!r}" for marker in SHARED_KEY_MARKERS if marker in lowered
        ]
    return problems


def key_vault(t: Templates) -> list[str]:
    problems: list[str] = []
    vaults = t.created("Microsoft.KeyVault/vaults")
    if len(vaults) != 1:
        return [f"expected one Key Vault, found {len(vaults)}"]
    props = vaults[0].get("properties") or {}
    _expect(
        problems,
        "Key Vault enableRbacAuthorization",
        props.get("enableRbacAuthorization"),
        want=True,
    )
    _expect(
        problems, "Key Vault enablePurgeProtection", props.get("enablePurgeProtection"), want=True
    )
    _expect(problems, "Key Vault enableSoftDelete", props.get("enableSoftDelete"), want=True)
    if "accessPolicies" in props:
        problems.append("Key Vault has access policies; it is in RBAC mode")
    return problems


def application_insights(t: Templates) -> list[str]:
    problems: list[str] = []
    components = t.created("Microsoft.Insights/components")
    if len(components) != 1:
        return [f"expected one Application Insights component, found {len(components)}"]
    props = components[0].get("properties") or {}
    _expect(
        problems, "Application Insights DisableLocalAuth", props.get("DisableLocalAuth"), want=True
    )
    _expect(
        problems,
        "Application Insights WorkspaceResourceId",
        render(props.get("WorkspaceResourceId")),
        want="workspace.id",
    )
    _expect(
        problems,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        dict(t.app_settings()).get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        want="ClientId=${identity.properties.clientId};Authorization=AAD",
    )
    return problems


def role_assignments(t: Templates) -> list[str]:
    problems: list[str] = []
    granted: Counter[str] = Counter()
    for assignment in t.resources("Microsoft.Authorization/roleAssignments"):
        where = f"{assignment.file}:{assignment.name}"
        definition = assignment.get("properties", "roleDefinitionId")
        arguments = (
            definition.get("function", {}).get("parameters", {})
            if isinstance(definition, dict)
            else {}
        )
        role = arguments.get("resource_name_1")
        role = t.variable(assignment.file, str(role)) or role
        if (
            definition.get("function", {}).get("type") != "subscription_resource_id"
            or role not in ROLES
        ):
            problems.append(f"{where} grants {render(definition)}: not one of the app's roles")
            continue
        granted[role] += 1
        role_name, scope_type = ROLES[role]
        scopes = {r.name: r.type for r in t.resources() if r.file == assignment.file}
        scope = assignment.get("scope")
        if not isinstance(scope, str) or scopes.get(scope) != scope_type:
            problems.append(
                f"{where} ({role_name}) must be scoped to a {scope_type}, is {render(scope)}"
            )
        _expect(
            problems,
            f"{where} principalType",
            assignment.get("properties", "principalType"),
            want="ServicePrincipal",
        )
    expected = Counter(list(ROLES))
    if granted != expected:
        extra = sorted((granted - expected).elements())
        missing = sorted((expected - granted).elements())
        problems.append(f"role assignments differ: extra {extra}, missing {missing}")
    return problems


def app_settings(t: Templates, expected: set[str], secrets: set[str]) -> list[str]:
    """The settings are exactly `expected` plus PLATFORM_SETTINGS; `secrets` come from Key Vault."""
    problems: list[str] = []
    if [c for c in t.created("Microsoft.Web/sites/config") if c.get("name") != "authsettingsV2"]:
        problems.append(
            "app settings belong in the site's siteConfig.appSettings only, not in sites/config"
        )
    settings = t.app_settings()
    names = [name for name, _ in settings]
    problems += [f"app setting {name} is set twice" for name, n in Counter(names).items() if n > 1]
    problems += [
        f"the template does not set {name}, which the app reads"
        for name in sorted(expected - set(names))
    ]
    allowed = expected | set(PLATFORM_SETTINGS)
    problems += [
        f"app setting {name} is not read by the app" for name in names if name not in allowed
    ]

    values = dict(settings)
    for name in sorted(secrets & set(values)):
        results = outcomes(values[name])
        references = [r for r in results if isinstance(r, str) and KEY_VAULT_REFERENCE.fullmatch(r)]
        others = [r for r in results if r != "" and r not in references]
        if not references or others:
            problems.append(
                f"secret {name} must be a Key Vault reference (or empty), is {render(values[name])}"
            )
    _expect(
        problems, "var secretUriPrefix", t.variable(MAIN, "secretUriPrefix"), want=SECRET_URI_PREFIX
    )
    secure = {
        name
        for name, p in t.main.get("parameters", {}).items()
        if any(d.get("type") == "secure" for d in p.get("decorators", []))
    }
    for name, value in settings:
        used = {param for param in secure if param in render(value)}
        if used:
            problems.append(f"app setting {name} uses secure parameter(s) {sorted(used)}")

    storage = {
        name: values.get(name)
        for name in PLATFORM_SETTINGS
        if name.startswith("AzureWebJobsStorage__")
    }
    _expect(
        problems,
        "AzureWebJobsStorage__credential",
        storage.get("AzureWebJobsStorage__credential"),
        want="managedidentity",
    )
    _expect(
        problems,
        "AzureWebJobsStorage__clientId",
        render(storage.get("AzureWebJobsStorage__clientId")),
        want="identity.properties.clientId",
    )
    if any(
        name == "AzureWebJobsStorage" or name.startswith("DEPLOYMENT_STORAGE") for name in names
    ):
        problems.append("host or deployment storage must not use a connection string")
    return problems


def key_vault_references(t: Templates) -> list[str]:
    """The Key Vault secret names the app settings refer to."""
    return sorted(
        {
            match.group(1)
            for _, value in t.app_settings()
            for result in outcomes(value)
            if isinstance(result, str) and (match := KEY_VAULT_REFERENCE.fullmatch(result))
        }
    )


def _decorator(t: Templates, parameter: str, kind: str) -> Node:
    for decorator in t.main.get("parameters", {}).get(parameter, {}).get("decorators", []):
        if decorator.get("type") == kind:
            return decorator.get("argument")
    return None


def flex_scale(t: Templates, *, lowest_maximum: int, memory_sizes: set[int]) -> list[str]:
    """maximumInstanceCount at least `lowest_maximum`; instanceMemoryMB one of `memory_sizes`."""
    problems: list[str] = []
    parameters = t.main.get("parameters", {})
    minimum = _decorator(t, "maximumInstanceCount", "min_value")
    if not isinstance(minimum, int) or minimum < lowest_maximum:
        problems.append(
            f"maximumInstanceCount must have @minValue({lowest_maximum}) or more, has "
            f"{render(minimum)}"
        )
    default = parameters.get("maximumInstanceCount", {}).get("default")
    if not isinstance(default, int) or default < lowest_maximum:
        problems.append(
            f"maximumInstanceCount defaults to {render(default)}, under {lowest_maximum}"
        )
    allowed = _decorator(t, "instanceMemoryMB", "allowed")
    if not isinstance(allowed, list) or not set(allowed) <= memory_sizes:
        problems.append(
            f"instanceMemoryMB allows {render(allowed)}; only {sorted(memory_sizes)} are accepted"
        )
    if parameters.get("instanceMemoryMB", {}).get("default") not in memory_sizes:
        problems.append("instanceMemoryMB's default is not an accepted size")
    return problems


AUTH_MODES = ["off", "optional", "required"]


def easy_auth(t: Templates, unauthenticated_paths: set[str]) -> list[str]:
    """App Service Authentication: behind the entraAuth parameter, with the audiences and client
    applications as parameters, and exactly `unauthenticated_paths` let through without a token."""
    problems: list[str] = []
    configs = [
        c for c in t.created("Microsoft.Web/sites/config") if c.get("name") == "authsettingsV2"
    ]
    if len(configs) != 1:
        return [f"expected one authsettingsV2 config, found {len(configs)}"]
    auth = configs[0]
    parameters = t.main.get("parameters", {})
    if _decorator(t, "entraAuth", "allowed") != AUTH_MODES:
        problems.append(f"parameter entraAuth must allow exactly {AUTH_MODES}")
    _expect(
        problems, "entraAuth default", parameters.get("entraAuth", {}).get("default"), want="off"
    )
    condition = t.main.get("resources", {}).get(auth.name, {}).get("config", {}).get("condition")
    _expect(
        problems, "authsettingsV2 condition", render(condition), want="not_equals(entraAuth, off)"
    )
    _expect(problems, "authsettingsV2 parent", auth.get("parent"), want="functionApp")
    _expect(problems, "platform.enabled", auth.get("properties", "platform", "enabled"), want=True)
    _expect(
        problems,
        "httpSettings.requireHttps",
        auth.get("properties", "httpSettings", "requireHttps"),
        want=True,
    )
    _expect(
        problems,
        "login.tokenStore.enabled",
        auth.get("properties", "login", "tokenStore", "enabled"),
        want=False,
    )
    aad = auth.get("properties", "identityProviders", "azureActiveDirectory") or {}
    _expect(problems, "azureActiveDirectory.enabled", aad.get("enabled"), want=True)
    validation = aad.get("validation") or {}
    for what, value, parameter in (
        ("allowedAudiences", validation.get("allowedAudiences"), "entraAllowedAudiences"),
        (
            "allowedApplications",
            (validation.get("defaultAuthorizationPolicy") or {}).get("allowedApplications"),
            "entraAllowedClientApplications",
        ),
    ):
        _expect(problems, f"validation {what}", value, want=parameter)
        if parameters.get(parameter, {}).get("type") != "array":
            problems.append(f"{parameter} must be an array parameter of {MAIN}")
    _expect(
        problems,
        "registration.clientId",
        (aad.get("registration") or {}).get("clientId"),
        want="entraApiClientId",
    )
    validation_global = auth.get("properties", "globalValidation") or {}
    _expect(
        problems,
        "requireAuthentication",
        render(validation_global.get("requireAuthentication")),
        want="equals(entraAuth, required)",
    )
    _expect(
        problems,
        "unauthenticatedClientAction",
        outcomes(validation_global.get("unauthenticatedClientAction")),
        want=["Return401", "AllowAnonymous"],
    )
    excluded = validation_global.get("excludedPaths")
    paths = t.variable(MAIN, str(excluded)) if isinstance(excluded, str) else excluded
    _expect(
        problems,
        "excludedPaths",
        sorted(paths) if isinstance(paths, list) else paths,
        want=sorted(unauthenticated_paths),
    )
    if any(name.startswith("WEBSITE_AUTH") for name, _ in t.app_settings()):
        problems.append("WEBSITE_AUTH_* is the platform's to set: an app setting would forge it")
    return problems


# ----------------------------------------------------------------------------------------------
# Operate: the workbook and the alert rules (modules/observability.bicep)
# ----------------------------------------------------------------------------------------------

OBSERVABILITY = "modules/observability.bicep"
WORKBOOK = "modules/workbook.json"
# Where the app names its telemetry: span attributes, metrics, log attributes (`ila.*`).
TELEMETRY_SOURCES = ("shared/telemetry.py", "shared/actions.py")
TELEMETRY_NAME = re.compile(r"\bila\.[a-z_]+(?:\.[a-z_]+)*")

# Each panel the workbook must have, by the phrases its query must contain.
WORKBOOK_PANELS = {
    "actions over time by status": ('Name == "ila.actions"', 'Properties["status"]', "bin("),
    "upstream latency p50/p95": (
        "AppDependencies",
        "percentile(DurationMs, 50)",
        "percentile(DurationMs, 95)",
    ),
    "retries and 429s": ('"ila.upstream.retries"', '"ila.upstream.throttled"'),
    "poison count": ('"ila.operations.poisoned"',),
    "failed operations with their correlation ids": (
        '"failed"',
        'Properties["ila.correlation_id"]',
        "correlationId",
    ),
}

# Each alert rule, by the phrases its query must contain.
ALERTS = {
    "any message in the poison queue": (
        "StorageQueueLogs",
        'OperationName == "PutMessage"',
        "/${poisonQueueName}/messages",
    ),
    "failure rate above the threshold": (
        'Name == "ila.actions"',
        '"failed"',
        "> ${failureRateThresholdPercent}",
    ),
    "an upstream answering 401": ('Name == "ila.upstream.attempts"', '["outcome"]) == "401"'),
    "5xx from the app's routes": ("AppRequests", "toint(ResultCode) >= 500"),
}


def telemetry_names(root: Path = ROOT) -> set[str]:
    """Every `ila.*` name the app's telemetry code uses."""
    return {
        name
        for source in TELEMETRY_SOURCES
        for name in TELEMETRY_NAME.findall((root / source).read_text(encoding="utf-8"))
    }


def _unknown_names(where: str, query: str, known: set[str]) -> list[str]:
    return [
        f"{where} reads {name}, which the app never records"
        for name in sorted(set(TELEMETRY_NAME.findall(query)) - known)
    ]


def workbook(t: Templates, content: dict[str, Any], known: set[str]) -> list[str]:
    """One shared workbook over the workspace, its content from workbook.json, with every panel
    of WORKBOOK_PANELS and only names the app records."""
    problems: list[str] = []
    books = t.created("Microsoft.Insights/workbooks")
    if len(books) != 1:
        return [f"expected one workbook, found {len(books)}"]
    book = books[0]
    _expect(problems, "workbook kind", book.get("kind"), want="shared")
    _expect(problems, "workbook category", book.get("properties", "category"), want="workbook")
    _expect(problems, "workbook sourceId", book.get("properties", "sourceId"), want="workspaceId")
    _expect(
        problems,
        "workbook serializedData",
        render(book.get("properties", "serializedData")),
        want="load_text_content(workbook.json)",
    )
    _expect(problems, "workbook version", content.get("version"), want="Notebook/1.0")
    queries = {
        item.get("name"): item["content"]
        for item in content.get("items", [])
        if item.get("type") == 3  # a query
    }
    for name, panel in queries.items():
        if panel.get("timeContextFromParameter") != "TimeRange":
            problems.append(f"workbook panel {name} ignores the TimeRange parameter")
        problems += _unknown_names(f"workbook panel {name}", panel.get("query", ""), known)
    for panel, phrases in WORKBOOK_PANELS.items():
        if not any(all(p in q.get("query", "") for p in phrases) for q in queries.values()):
            problems.append(f"the workbook has no panel for {panel} (a query with {phrases})")
    return problems


def alert_rules(t: Templates, known: set[str]) -> list[str]:
    """The ALERTS, each a log alert over the workspace that notifies the action group given as
    a parameter of main.bicep; the poison alert's data (queue writes) reaches the workspace."""
    problems: list[str] = []
    rules = t.created("Microsoft.Insights/scheduledQueryRules")
    queries: dict[str, str] = {}
    for rule in rules:
        where = f"alert {rule.name}"
        _expect(problems, f"{where} kind", rule.get("kind"), want="LogAlert")
        _expect(problems, f"{where} enabled", rule.get("properties", "enabled"), want=True)
        _expect(problems, f"{where} scopes", rule.get("properties", "scopes"), want=["workspaceId"])
        _expect(
            problems,
            f"{where} action groups",
            rule.get("properties", "actions", "actionGroups"),
            want="actionGroups",
        )
        # Azure validates a rule's query at deployment unless told not to: an unknown table or
        # column is then a deployment error, not an alert that can never fire.
        if rule.get("properties", "skipQueryValidation") is not None:
            problems.append(f"{where} sets skipQueryValidation: Azure must validate its query")
        [criterion, *more] = rule.get("properties", "criteria", "allOf") or [{}]
        if more:
            problems.append(f"{where} has more than one criterion")
        queries[rule.name] = str(criterion.get("query", ""))
        problems += _unknown_names(where, queries[rule.name], known)
    for alert, phrases in ALERTS.items():
        matching = [name for name, q in queries.items() if all(p in q for p in phrases)]
        if len(matching) != 1:
            problems.append(f"expected one alert for {alert} (query with {phrases}): {matching}")
    if len(rules) != len(ALERTS):
        problems.append(f"expected {len(ALERTS)} alert rules, found {len(rules)}")
    _expect(
        problems,
        "var actionGroups",
        render(t.variable(OBSERVABILITY, "actionGroups")),
        want="(empty(actionGroupId) ? [] : [actionGroupId])",
    )
    module = t.main.get("modules", {}).get("observability", {}).get("config", {})
    _expect(
        problems,
        "observability module actionGroupId",
        module.get("params", {}).get("actionGroupId"),
        want="alertActionGroupId",
    )
    parameters = t.main.get("parameters", {})
    if parameters.get("alertActionGroupId", {}).get("type") != "string":
        problems.append(f"alertActionGroupId must be a string parameter of {MAIN}")
    if parameters.get("failureRateThresholdPercent", {}).get("type") != "int":
        problems.append(f"failureRateThresholdPercent must be an int parameter of {MAIN}")
    writes = [
        d
        for d in t.created("Microsoft.Insights/diagnosticSettings")
        if d.get("scope") == "queueService"
        and {"category": "StorageWrite", "enabled": True} in (d.get("properties", "logs") or [])
        and d.get("properties", "workspaceId") == "workspaceId"
    ]
    if len(writes) != 1:
        problems.append("the queue service's StorageWrite log must go to the workspace")
    return problems
