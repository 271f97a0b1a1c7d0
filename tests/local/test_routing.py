"""ASP.NET Core route templates: parsing, matching, constraints and precedence."""

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
        pytest.param("api/items", "/api/items/x", None, id="literal-too-long"),
        pytest.param("api/items", "/api", None, id="literal-too-short"),
        pytest.param("api/items", "/api//items", None, id="empty-segment"),
        pytest.param("api/{id}", "/api/AbC", {"id": "AbC"}, id="parameter-keeps-case"),
        pytest.param("api/{id}", "/api/a%2Fb%20c", {"id": "a/b c"}, id="parameter-decoded"),
        pytest.param("api/{id?}", "/api", {}, id="optional-absent"),
        pytest.param("api/{id?}", "/api/7", {"id": "7"}, id="optional-present"),
        pytest.param("api/{id=none}", "/api", {"id": "none"}, id="default-used"),
        pytest.param("api/{id=none}", "/api/x", {"id": "x"}, id="default-overridden"),
        pytest.param("api/{*rest}", "/api/a/b/c", {"rest": "a/b/c"}, id="catch-all"),
        pytest.param("api/{**rest}", "/api/a/b", {"rest": "a/b"}, id="double-star-catch-all"),
        pytest.param("api/{*rest}", "/api", {}, id="catch-all-empty"),
        pytest.param("api/{*rest=x}", "/api", {"rest": "x"}, id="catch-all-default"),
        pytest.param("", "/", {}, id="empty-template"),
        pytest.param("", "/x", None, id="empty-template-other-path"),
        pytest.param("{{literal}}", "/{literal}", {}, id="escaped-braces"),
        pytest.param("v{major:int}/x", "/v2/x", {"major": "2"}, id="complex-prefix"),
        pytest.param("v{major:int}/x", "/vx/x", None, id="complex-constraint-fails"),
        pytest.param("{name}.{ext}", "/a.b.c", {"name": "a.b", "ext": "c"}, id="complex-last-dot"),
        pytest.param("{name}.{ext?}", "/file.txt", {"name": "file", "ext": "txt"}, id="opt-ext"),
        pytest.param("{name}.{ext?}", "/file", {"name": "file"}, id="optional-ext-absent"),
        pytest.param("{a}-{b}-{c}", "/1-2-3-4", {"a": "1-2", "b": "3", "c": "4"}, id="rtl"),
        pytest.param("x{a}y", "/XqqY", {"a": "qq"}, id="complex-literals-any-case"),
        pytest.param("x{a}y", "/xy", None, id="complex-parameter-not-empty"),
    ],
)
def test_template_matches_paths_as_aspnet_does(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert match(template, path) == expected


@pytest.mark.parametrize(
    ("constraint", "accepted", "rejected"),
    [
        ("int", ["0", "-5", "+7", "2147483647"], ["2147483648", "1.5", "x", "٣"]),
        ("long", ["9223372036854775807"], ["9223372036854775808", "x"]),
        ("bool", ["true", "False"], ["yes", "1"]),
        (
            "guid",
            [
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "0F8FAD5BD9CB469FA16570867728950E",
                "{0f8fad5b-d9cb-469f-a165-70867728950e}",
                "(0f8fad5b-d9cb-469f-a165-70867728950e)",
            ],
            ["0f8fad5b-d9cb-469f-a165", "z" * 32],
        ),
        ("alpha", ["abcXYZ"], ["abc1", "é"]),
        ("decimal", ["1.5", "-2", ".5"], ["1e3", "x"]),
        ("double", ["1.5e3", "-2"], ["x", "1e"]),
        ("datetime", ["2024-01-02", "2024-01-02T03:04:05"], ["yesterday"]),
        ("minlength(3)", ["abc", "abcd"], ["ab"]),
        ("maxlength(3)", ["abc"], ["abcd"]),
        ("length(2)", ["ab"], ["a", "abc"]),
        ("length(2,3)", ["ab", "abc"], ["a", "abcd"]),
        ("min(10)", ["10", "99"], ["9", "x"]),
        ("max(10)", ["10", "-1"], ["11"]),
        ("range(1,3)", ["1", "3"], ["0", "4"]),
        ("regex(^[a-z]{{2}}\\d$)", ["ab1", "AB1"], ["abc1", "a1"]),
        ("int:range(1,3)", ["2"], ["4", "x"]),
    ],
)
def test_inline_constraints_accept_and_reject_values(
    constraint: str, accepted: list[str], rejected: list[str]
) -> None:
    template = RouteTemplate(f"x/{{value:{constraint}}}")
    for value in accepted:
        assert template.match(["x", value]) == {"value": value}, value
    for value in rejected:
        assert template.match(["x", value]) is None, value


def test_precedence_puts_literals_then_constraints_then_parameters_then_catch_alls() -> None:
    templates = [
        "api/{*rest}",
        "api/{id}",
        "api/{id:int}/x",
        "api/{*rest:minlength(1)}",
        "api/{id:int}",
        "api/v{n}",
        "api/items",
    ]
    ordered = sorted(templates, key=lambda text: RouteTemplate(text).precedence)
    assert ordered == [
        "api/items",
        "api/{id:int}",
        "api/v{n}",
        "api/{id:int}/x",
        "api/{id}",
        "api/{*rest:minlength(1)}",
        "api/{*rest}",
    ]


@pytest.mark.parametrize(
    "template",
    [
        "api//x",
        "api/{id",
        "api/id}",
        "api/{}",
        "api/{id:nosuch}",
        "api/{id:length(x)}",
        "api/{id:regex([)}",
        "api/{id:int(3)}",
        "api/{id}/{ID}",
        "api/{*rest}/x",
        "api/{id?}/x",
        "api/{*rest?}",
        "api/{a}{b}",
        "api/{a?}.{b}",
        "api/x?",
    ],
)
def test_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate(template)


def test_default_values_are_checked_against_constraints() -> None:
    assert RouteTemplate("x/{n:int=abc}").match(["x"]) is None
    assert RouteTemplate("x/{n:int=5}").match(["x"]) == {"n": "5"}


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
