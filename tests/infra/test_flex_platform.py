"""Platform rules from Microsoft's documents, samples and issue threads, encoded against the
parsed templates (no Bicep CLI here). Each test names its source and breaks the rule once."""

from __future__ import annotations

import pytest

from tests.infra import templates
from tests.infra.templates import MAIN, Templates
from tests.infra.test_bicep import (
    RULES,
    mutated,
    unauthenticated_paths,
)


def site_config(t: Templates) -> dict[str, object]:
    (site,) = t.created("Microsoft.Web/sites")
    config: dict[str, object] = site.get("properties", "siteConfig")
    return config


def test_no_ftps_state_on_flex_consumption(real: Templates, sources: dict[str, str]) -> None:
    """Flex Consumption refuses `siteConfig.ftpsState`: "The following list of 4 site
    configuration properties (Site.SiteConfig.FtpsState, ...) for Flex Consumption sites is
    invalid" (https://github.com/microsoft/azure-pipelines-tasks/issues/21032; the Flex
    Consumption deprecations table of
    https://learn.microsoft.com/azure/azure-functions/functions-app-settings lists
    properties.ftpsState). FTP stays off through basicPublishingCredentialsPolicies/ftp."""
    assert "ftpsState" not in site_config(real)
    broken = mutated(
        sources,
        MAIN,
        "      scmMinTlsVersion: '1.2'\n",
        "      scmMinTlsVersion: '1.2'\n      ftpsState: 'Disabled'\n",
    )
    assert any("ftpsState is refused" in p for p in templates.function_app(broken))
    assert (
        "checkov:skip=CKV_AZURE_78:Flex Consumption refuses siteConfig.ftpsState" in sources[MAIN]
    )


def test_maximum_instance_count_is_at_least_40(real: Templates, sources: dict[str, str]) -> None:
    """ "Currently the lowest maximum instance count value is 40" (MicrosoftDocs/azure-docs,
    articles/azure-functions/event-driven-scaling.md, Flex Consumption); the Microsoft samples
    declare `@minValue(40)` (Azure-Samples/functions-quickstart-python-http-azd,
    infra/main.bicep)."""
    assert RULES["flex_scale"](real) == []
    for old, new in (("@minValue(40)", "@minValue(1)"), ("int = 40", "int = 10")):
        problems = RULES["flex_scale"](mutated(sources, MAIN, old, new))
        assert any("maximumInstanceCount" in p for p in problems), (old, problems)


def test_instance_memory_offers_only_sizes_the_api_accepts(sources: dict[str, str]) -> None:
    """instanceMemoryMB 512 was refused by Microsoft.Web/sites@2024-04-01
    (https://github.com/Azure/azure-rest-api-specs/issues/40898, later reported fixed in one
    region); the Microsoft Flex samples allow [2048, 4096]."""
    broken = mutated(
        sources, MAIN, "@allowed([\n  2048\n  4096", "@allowed([\n  512\n  2048\n  4096"
    )
    problems = RULES["flex_scale"](broken)
    assert any("instanceMemoryMB allows" in p for p in problems), problems


def test_the_maximum_is_described_per_function_group(real: Templates) -> None:
    """ "The maximum instance count applies to on-demand instances in each per-function scale
    group (function group) rather than to the app's combined instances" (event-driven-scaling.md;
    HTTP triggers scale as one group, the queue trigger on its own: flex-consumption-plan.md,
    "Per-function scaling")."""
    description = templates._decorator(real, "maximumInstanceCount", "description")
    assert "function group" in description
    assert "2 x maximumInstanceCount" in description


def test_cors_comes_from_the_app_never_the_platform_too(
    real: Templates, sources: dict[str, str]
) -> None:
    """Logic Apps "HTTP + Swagger" needs CORS on the Swagger file
    (https://learn.microsoft.com/azure/connectors/connectors-native-http-swagger). App Service:
    "Don't try to use App Service CORS and your own CORS code together. When used together, App
    Service CORS takes precedence and your own CORS code has no effect"
    (https://learn.microsoft.com/azure/app-service/app-service-web-tutorial-rest-api). The app
    sends the header on its two documents (tests/contract), so the template sets no cors."""
    assert "cors" not in site_config(real)
    assert "allowedOrigins" not in sources[MAIN]
    broken = mutated(
        sources,
        MAIN,
        "      scmMinTlsVersion: '1.2'\n",
        "      scmMinTlsVersion: '1.2'\n      cors: {\n        allowedOrigins: [\n"
        "          '*'\n        ]\n      }\n",
    )
    assert any("siteConfig.cors" in p for p in templates.function_app(broken))


def test_easy_auth_is_behind_a_parameter_with_audiences_and_client_applications(
    real: Templates,
) -> None:
    """authsettingsV2 as Azure Verified Modules declare it (Azure/bicep-registry-modules,
    avm/res/web/site/config--authsettingsv2/main.bicep), with the Entra provider's
    `validation.allowedAudiences` and `defaultAuthorizationPolicy.allowedApplications`
    (https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad,
    "Use a built-in authorization policy")."""
    assert RULES["easy_auth"](real) == []


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("if (entraAuth != 'off')", "if (true)", "condition"),
        ("      requireHttps: true", "      requireHttps: false", "requireHttps"),
        (
            "          allowedAudiences: entraAllowedAudiences",
            "          allowedAudiences: []",
            "allowedAudiences",
        ),
        (
            "            allowedApplications: entraAllowedClientApplications",
            "            allowedApplications: []",
            "allowedApplications",
        ),
        ("  '/api/webhooks/contraforce'\n", "", "excludedPaths"),
        ("  '/api/health'\n", "  '/api/health'\n  '/api/actions/unlink-ticket'\n", "excludedPaths"),
        (
            "        enabled: false\n      }\n    }\n  }\n}",
            "        enabled: true\n      }\n    }\n  }\n}",
            "tokenStore",
        ),
    ],
)
def test_a_weakened_easy_auth_is_noticed(
    sources: dict[str, str], old: str, new: str, complaint: str
) -> None:
    problems = RULES["easy_auth"](mutated(sources, MAIN, old, new))
    assert any(complaint in p for p in problems), problems


def test_easy_auth_lets_through_exactly_the_anonymous_routes_and_the_webhook() -> None:
    """Under `required`, only these skip Easy Auth: the health probe, the two API documents
    (a Logic Apps designer fetches them without a token) and ContraForce's signed webhook."""
    assert unauthenticated_paths() == {
        "/api/health",
        "/api/openapi.json",
        "/api/swagger.json",
        "/api/webhooks/contraforce",
    }


def test_the_template_never_sets_the_platforms_auth_marker(sources: dict[str, str]) -> None:
    """WEBSITE_AUTH_ENABLED is "Read-only. Injected into a Windows or Linux app to indicate
    whether App Service authentication is enabled"
    (https://learn.microsoft.com/azure/app-service/reference-app-settings). The app trusts
    X-MS-CLIENT-PRINCIPAL only when it is set; an app setting would forge it."""
    setting = "        {\n          name: 'ALLOWED_PRINCIPALS'\n"
    broken = mutated(
        sources,
        MAIN,
        setting,
        "        {\n          name: 'WEBSITE_AUTH_ENABLED'\n          value: 'True'\n        }\n"
        + setting,
    )
    assert any("forge" in p for p in RULES["easy_auth"](broken))
