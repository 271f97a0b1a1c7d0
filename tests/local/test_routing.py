"""Route templates: literal segments and ``{name}`` parameters, matched as the Functions host
matches them, ordered literal before parameter, and nothing else accepted."""

from __future__ import annotations

import pytest

from local.routing import RouteTemplate, RouteTemplateError, split_path


def match(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate(template).match(split_path(path.encode()))


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        pytest.param("api/items", "/api/items", {}, id="literal"),
        pytest.param("api/items", "/API/Items/", {}, id="literal-any-case-trailing-slash"),
        pytest.param("api/items", "/api/items//", None, id="only-one-trailing-slash"),
        pytest.param("api/items", "/api/items/x", None, id="literal-too-long"),
        pytest.param("api/items", "/api", None, id="literal-too-short"),
        pytest.param("api/items", "/api//items", None, id="empty-segment"),
        pytest.param("api/it%65ms", "/api/items", None, id="template-literal-not-decoded"),
        pytest.param("api/items", "/api/it%65ms", {}, id="path-literal-decoded"),
        pytest.param("openapi.json", "/openapiXjson", None, id="dot-is-literal"),
        pytest.param("api/{id}", "/api/AbC", {"id": "AbC"}, id="parameter-keeps-case"),
        pytest.param("api/{id}", "/api/a%2Fb%20c", {"id": "a/b c"}, id="parameter-decoded"),
        pytest.param("api/{id}", "/api/100%25", {"id": "100%"}, id="parameter-percent"),
        pytest.param("api/{id}", "/api/caf%C3%A9", {"id": "café"}, id="parameter-utf8"),
        pytest.param("api/{id}", "/api", None, id="parameter-required"),
        pytest.param("api/{id}", "/api/a/b", None, id="parameter-one-segment"),
        pytest.param(
            "a/{x}/b/{y}", "/A/1/B/two", {"x": "1", "y": "two"}, id="parameters-and-literals"
        ),
        pytest.param("", "/", {}, id="empty-template"),
        pytest.param("", "/x", None, id="empty-template-other-path"),
    ],
)
def test_template_matches_paths_as_the_functions_host_does(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert match(template, path) == expected


def test_precedence_puts_literal_segments_before_parameters() -> None:
    templates = ["api/{kind}/{id}", "api/{kind}/x", "api/items/{id}", "api/items/x", "api"]
    ordered = sorted(templates, key=lambda text: RouteTemplate(text).precedence)
    assert ordered == ["api", "api/items/x", "api/items/{id}", "api/{kind}/x", "api/{kind}/{id}"]


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("api//x", id="empty-segment"),
        pytest.param("api/{id", id="unclosed"),
        pytest.param("api/id}", id="unopened"),
        pytest.param("api/{}", id="no-name"),
        pytest.param("api/{id:int}", id="constraint"),
        pytest.param("api/{id?}", id="optional"),
        pytest.param("api/{id=x}", id="default"),
        pytest.param("api/{*rest}", id="catch-all"),
        pytest.param("api/v{n}", id="literal-and-parameter-in-one-segment"),
        pytest.param("api/{a}{b}", id="two-parameters-in-one-segment"),
        pytest.param("api/{id}/{ID}", id="repeated-name"),
        pytest.param("api/x?", id="question-mark"),
    ],
)
def test_templates_outside_the_served_grammar_are_refused(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate(template)


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        (b"/", []),
        (b"", []),
        (b"/api/a/", ["api", "a"]),
        (b"/api/a%2Fb", ["api", "a/b"]),
        (b"/api/%E2%9C%93?code=x", ["api", "\u2713"]),
        (b"/api//a", ["api", "", "a"]),
    ],
)
def test_split_path_decodes_each_segment(raw: bytes, segments: list[str]) -> None:
    assert split_path(raw) == segments
