"""`${...}` parameter resolution follows Conductor's ParametersUtils (conductor-oss.md 3.2-3.3)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from jsonpath_ng.ext.parser import parse as jsonpath_parse

from app.engine.expressions import (
    SecretNotAvailable,
    _compile,
    _read_path,
    has_expressions,
    java_str,
    references_secrets,
    resolve,
)

TASK_ID = "task-0001"


def make_context() -> dict[str, Any]:
    """The worked-example context of conductor-oss.md 3.3."""
    return {
        "workflow": {
            "input": {
                "name": "conductor",
                "count": 2,
                "list": [10, 20, 30],
                "idx": 1,
                "obj": {"a": {"b": 5}},
            },
            "output": {},
            "status": "RUNNING",
            "workflowId": "wf-123",
            "correlationId": "corr-9",
            "variables": {"v": True},
        },
        "t1": {
            "input": {},
            "output": {"op": "done", "items": [{"id": 1}, {"id": 2}]},
            "status": "COMPLETED",
            "taskId": "t1-id",
            "referenceTaskName": "t1",
        },
    }


CTX = make_context()


def secret_store(values: dict[str, str]) -> Any:
    def lookup(name: str) -> str | None:
        return values.get(name)

    return lookup


# --------------------------------------------------------------------------- reference 3.3


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${workflow.input.count}", 2),
        ("${workflow.input.obj}", {"a": {"b": 5}}),
        ("${workflow.input.obj.a.b}", 5),
        ("Hello ${workflow.input.name}", "Hello conductor"),
        ("n=${workflow.input.count}", "n=2"),
        ("o=${workflow.input.obj}", "o={a={b=5}}"),
        ("${workflow.input.missing}", None),
        ("x-${workflow.input.missing}", "x-null"),
        ("${t1.output.items[0].id}", 1),
        ("${t1.output.items[*].id}", [1, 2]),
        ("${t1.output.items[?(@.id == 2)]}", [{"id": 2}]),
        ("${workflow.input.list[${workflow.input.idx}]}", 20),
        ("${t9.output.x}", None),
        ("${workflow.variables.v}", True),
        ("${workflow.workflowId}", "wf-123"),
        ("${workflow.correlationId}", "corr-9"),
        ("${t1.status}", "COMPLETED"),
        ("${t1.taskId}", "t1-id"),
        ("${CPEWF_TASK_ID}", TASK_ID),
        ("$${workflow.input.name}", "${workflow.input.name}"),
        ("a $${x} b ${workflow.input.count}", "a ${x} b 2"),
        ("${}", ""),
        ({"k": ["${workflow.input.count}", 7]}, {"k": [2, 7]}),
    ],
)
def test_worked_examples_from_the_reference(template: Any, expected: Any) -> None:
    result = resolve(template, CTX, task_id=TASK_ID)
    assert result == expected
    assert type(result) is type(expected)


def test_missing_value_keeps_its_key_with_null() -> None:
    assert resolve({"m": "${workflow.input.missing}"}, CTX) == {"m": None}


# --------------------------------------------------------------------------- rule 1: nesting


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${recordIds[${index}]}", 2),
        ("${map.${mapValue}[${index}]}", 2),
        ("${map.b[${map.${mapValue}[${index}]}]}", 5),
        ("v=${map.b[${map.${mapValue}[${index}]}]}", "v=5"),
    ],
)
def test_inner_expressions_resolve_first(template: str, expected: Any) -> None:
    # ParametersUtilsTest.testNestedPathExpressions
    doc = {
        "index": 1,
        "mapValue": "a",
        "recordIds": [1, 2, 3],
        "map": {"a": [1, 2, 3], "b": [2, 4, 5], "c": [3, 7, 8]},
    }
    assert resolve(template, doc) == expected


def test_inner_expression_that_misses_makes_the_outer_one_null() -> None:
    assert resolve("${workflow.input.list[${workflow.input.nope}]}", CTX) is None


# --------------------------------------------------------------------------- rule 2: types


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, 2), (2.5, 2.5), (True, True), (False, False), (None, None), ([1], [1]), ("s", "s")],
)
def test_whole_string_expression_keeps_the_json_type(value: Any, expected: Any) -> None:
    result = resolve("${workflow.input.x}", {"workflow": {"input": {"x": value}}})
    assert result == expected
    assert type(result) is type(expected)


def test_surrounding_whitespace_makes_it_interpolation() -> None:
    assert resolve(" ${workflow.input.count}", CTX) == " 2"


def test_two_adjacent_expressions_interpolate() -> None:
    assert resolve("${workflow.input.count}${workflow.input.count}", CTX) == "22"


# --------------------------------------------------------------------------- rule 3: toString


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (7, "7"),
        (-12345678901234567890, "-12345678901234567890"),
        (2.0, "2.0"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (0.001, "0.001"),
        (1e-4, "1.0E-4"),
        (9.999e-4, "9.999E-4"),
        (9999999.999, "9999999.999"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (1e21, "1.0E21"),
        (float("inf"), "Infinity"),
        (float("nan"), "NaN"),
        ("plain", "plain"),
        ({"a": {"b": 5}}, "{a={b=5}}"),
        ({"a": 1, "b": [1, None]}, "{a=1, b=[1, null]}"),
        ([1, 2, 3], "[1, 2, 3]"),
        ([{"id": 1}, {"id": 2}], "[{id=1}, {id=2}]"),
        (["x", True, None], "[x, true, null]"),
        ([], "[]"),
        ({}, "{}"),
    ],
)
def test_interpolation_uses_java_tostring(value: Any, text: str) -> None:
    assert java_str(value) == text
    assert resolve("v=${workflow.input.x}", {"workflow": {"input": {"x": value}}}) == f"v={text}"


# --------------------------------------------------------------------------- rules 4, 5, 10


def test_unknown_task_ref_interpolates_as_null() -> None:
    assert resolve("got ${t9.output.x}", CTX) == "got null"


@pytest.mark.parametrize("template", ["${}", "${ }", "${   }", "${\t\n}"])
def test_blank_expression_is_empty_string(template: str) -> None:
    assert resolve(template, CTX) == ""


def test_blank_expression_inside_text_disappears() -> None:
    assert resolve("a${  }b", CTX) == "ab"


def test_non_string_scalars_are_copied_as_is() -> None:
    value = {"i": 1, "f": 1.5, "b": False, "n": None, "l": [1, None, True]}
    assert resolve(value, CTX) == value


def test_dict_keys_are_not_resolved() -> None:
    assert resolve({"${workflow.input.name}": 1}, CTX) == {"${workflow.input.name}": 1}


def test_maps_and_lists_are_resolved_at_any_depth() -> None:
    template = {"a": [{"b": ["${workflow.input.count}", {"c": "${t1.output.op}"}]}]}
    assert resolve(template, CTX) == {"a": [{"b": [2, {"c": "done"}]}]}


def test_unparseable_path_is_null_not_an_error() -> None:
    assert resolve("${workflow.input.[[}", CTX) is None
    assert resolve("x=${workflow..[?(}", CTX) == "x=null"


# --------------------------------------------------------------------------- rule 6: escaping


def test_escaped_expressions_inside_longer_strings() -> None:
    # ParametersUtilsTest.testReplaceWithEscapedTags
    doc = {"someString": "conductor", "someNumber": 2}
    template = {
        "k1": "${$.someString} $${$.someNumber}${$.someNumber} ${$.someNumber}$${$.someString}",
        "k2": "$${$.someString}afterText",
        "k3": "beforeText$${$.someString}",
        "k4": "$${$.someString} afterText",
        "k5": "beforeText $${$.someString}",
        "map": {"a": "${someString}", "b": "${someNumber}", "c": "$${someString} ${someNumber}"},
        "list": ["${someString}", "${someNumber}", "${someString} $${someNumber}"],
    }
    assert resolve(template, doc) == {
        "k1": "conductor ${$.someNumber}2 2${$.someString}",
        "k2": "${$.someString}afterText",
        "k3": "beforeText${$.someString}",
        "k4": "${$.someString} afterText",
        "k5": "beforeText ${$.someString}",
        "map": {"a": "conductor", "b": 2, "c": "${someString} 2"},
        "list": ["conductor", 2, "conductor ${someNumber}"],
    }


def test_escape_removes_exactly_one_dollar() -> None:
    assert resolve("$$${workflow.input.count}", CTX) == "$${workflow.input.count}"


def test_escaped_output_filter_survives_as_a_plain_template() -> None:
    template = {"outputFilter": {"_secrets": {"token": "$${fetch.output.response.body.token}"}}}
    assert resolve(template, CTX) == {
        "outputFilter": {"_secrets": {"token": "${fetch.output.response.body.token}"}}
    }


def test_escape_in_an_interpolated_value_is_also_unescaped() -> None:
    # Conductor unescapes the whole interpolated string, substituted values included.
    doc = {"workflow": {"input": {"x": "a$${b}"}}}
    assert resolve("v=${workflow.input.x}", doc) == "v=a${b}"
    assert resolve("${workflow.input.x}", doc) == "a$${b}"


def test_unclosed_expression_stops_the_scan() -> None:
    # Conductor's balanced-brace regex matches nothing after an unclosed `${` (checked on Java).
    assert resolve("${workflow.input.count} ${b ${workflow.input.count}", CTX) == (
        "2 ${b ${workflow.input.count}"
    )
    assert resolve("{ ${workflow.input.count} }", CTX) == "{ 2 }"
    assert resolve("${workflow.input.count}}", CTX) == "2}"


# --------------------------------------------------------------------------- JsonPath features


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${$.workflow.input.count}", 2),
        ("${$.t1.output.items[1].id}", 2),
        ("x=${$.workflow.input.name}", "x=conductor"),
        ("${ $.workflow.input.count }", 2),
    ],
)
def test_leading_dollar_dot_is_optional(template: str, expected: Any) -> None:
    assert resolve(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${t1.output.items[-1].id}", 2),
        ("${workflow.input.list[1:]}", [20, 30]),
        ("${workflow.input.list[0,2]}", [10, 30]),
        ("${workflow.input.obj.*}", [{"b": 5}]),
        ("${$..b}", [5]),
        ("${t1.output.items[?(@.id > 5)]}", []),
        ("${t9.output.items[*]}", []),
        ("${t1.output.items[?(@.id == 1)].id}", [1]),
        ("${workflow.input.list[7]}", None),
        ("${workflow.input.obj[0]}", None),
        ("${workflow.input.list.a}", None),
        ("${workflow.input.name.a}", None),
    ],
)
def test_jsonpath_features(template: str, expected: Any) -> None:
    assert resolve(template, CTX) == expected


def test_filter_on_strings() -> None:
    doc = {"t": {"output": {"users": [{"n": "ann", "a": 1}, {"n": "bob", "a": 2}]}}}
    assert resolve("${t.output.users[?(@.n == 'bob')].a}", doc) == [2]


# --------------------------------------------------------------------------- fast path


FAST_DOC: dict[str, Any] = {
    "workflow": {
        "input": {"a": {"b": [{"c": 1}, {"c": [True, None]}]}, "x-y": 3, "_u": "u", "n": None},
        "list": [[1, 2], [3, [4, 5]]],
    },
    "t-1": {"output": {"s": "text", "e": {}, "l": []}},
}


@pytest.mark.parametrize(
    "path",
    [
        "workflow",
        "workflow.input",
        "workflow.input.a.b[0].c",
        "workflow.input.a.b[1].c[0]",
        "workflow.input.a.b[1].c[1]",
        "workflow.input.a.b[5].c",
        "workflow.input.x-y",
        "workflow.input._u",
        "workflow.input.n",
        "workflow.input.n.deeper",
        "workflow.list[1][1][0]",
        "workflow.list[0][9]",
        "$.workflow.list[1]",
        "t-1.output.s",
        "t-1.output.s.x",
        "t-1.output.e.x",
        "t-1.output.l[0]",
        "t-1.output.s[0]",
        "missing.output",
        "workflow.input.a[0]",
        "workflow.list.a",
    ],
)
def test_fast_path_agrees_with_jsonpath_ng(path: str) -> None:
    assert isinstance(_compile(path), tuple), "expected the fast path to handle this"
    assert _read_path(FAST_DOC, path) == _jsonpath_ng_value(FAST_DOC, path)


def test_fast_path_agrees_with_jsonpath_ng_on_random_documents() -> None:
    rng = random.Random(20260101)
    found = 0
    for _ in range(100):
        doc = {key: _random_doc(rng, depth=4) for key in _KEYS}
        for path in _random_paths(rng, doc, count=10):
            assert isinstance(_compile(path), tuple)
            value = _read_path(doc, path)
            assert value == _jsonpath_ng_value(doc, path), path
            found += value is not None
    assert found > 500  # most generated paths lead somewhere, so the comparison means something


def _jsonpath_ng_value(doc: Any, path: str) -> Any:
    matches = jsonpath_parse(path).find(doc)
    return matches[0].value if matches else None


_KEYS = ["a", "b", "c_d", "e-f", "G1"]


def _random_doc(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.15:
        return rng.choice([0, 1.5, "s", True, None, [], {}])
    if roll < 0.6:
        return {k: _random_doc(rng, depth - 1) for k in rng.sample(_KEYS, rng.randint(1, 4))}
    return [_random_doc(rng, depth - 1) for _ in range(rng.randint(1, 3))]


def _random_paths(rng: random.Random, doc: dict[str, Any], count: int) -> list[str]:
    """Paths that mostly follow the document, with a few wrong turns."""
    paths = []
    for _ in range(count):
        path = rng.choice(_KEYS)
        node: Any = doc[path]
        for _ in range(rng.randint(0, 4)):
            wrong_turn = rng.random() < 0.1
            if isinstance(node, list) and node and not wrong_turn:
                i = rng.randrange(len(node))
                path, node = f"{path}[{i}]", node[i]
            elif isinstance(node, dict) and node and not wrong_turn:
                key = rng.choice(list(node))
                path, node = f"{path}.{key}", node[key]
            elif rng.random() < 0.5:
                path, node = f"{path}[{rng.randint(0, 3)}]", None
            else:
                path, node = f"{path}.{rng.choice(_KEYS)}", None
        paths.append(rng.choice(["", "$."]) + path)
    return paths


@pytest.mark.parametrize("path", ["workflow.input.where", "workflow.input.null"])
def test_fast_path_reads_names_jsonpath_ng_reserves(path: str) -> None:
    # Jayway reads these as plain property names; jsonpath-ng's lexer would reject them.
    doc = {"workflow": {"input": {"where": 1, "null": 2}}}
    assert _read_path(doc, path) in (1, 2)


# --------------------------------------------------------------------------- CPEWF_TASK_ID


def test_task_id_parameter_is_the_task_id() -> None:
    assert resolve("${CPEWF_TASK_ID}", CTX, task_id=TASK_ID) == TASK_ID
    assert resolve("id=${CPEWF_TASK_ID}", CTX, task_id=TASK_ID) == f"id={TASK_ID}"


def test_task_id_parameter_stays_literal_without_a_task_id() -> None:
    assert resolve("${CPEWF_TASK_ID}", CTX) == "${CPEWF_TASK_ID}"
    assert resolve("id=${CPEWF_TASK_ID} n=${workflow.input.count}", CTX) == (
        "id=${CPEWF_TASK_ID} n=2"
    )


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize("name", ["HOME", "BATON_EXPR_PROBE", "NETFLIX_ENV", "NETFLIX_STACK"])
def test_os_environment_variables_are_not_resolved(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "server-side-value")
    assert resolve("${" + name + "}", CTX) is None
    assert resolve("v=${" + name + "}", CTX) == "v=null"


def test_workflow_env_reads_the_env_map_in_the_context() -> None:
    ctx = make_context()
    ctx["workflow"]["env"] = {"REGION": "eu-west-1", "CFG": '{"url": "https://x", "ports": [1, 2]}'}
    assert resolve("${workflow.env.REGION}", ctx) == "eu-west-1"
    assert resolve("r=${workflow.env.REGION}", ctx) == "r=eu-west-1"
    assert resolve("${workflow.env.CFG.url}", ctx) == "https://x"
    assert resolve("${workflow.env.CFG.$.ports[1]}", ctx) == 2
    assert resolve("${workflow.env.CFG.$}", ctx) == {"url": "https://x", "ports": [1, 2]}
    assert resolve("${workflow.env.REGION.x}", ctx) is None
    assert resolve("${workflow.env.NOPE}", ctx) is None


def test_workflow_env_without_an_env_map_is_null() -> None:
    assert resolve("${workflow.env.REGION}", CTX) is None
    assert resolve("r=${workflow.env.REGION}", CTX) == "r=null"


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "template",
    [
        "${workflow.secrets.api_key}",
        "Bearer ${workflow.secrets.api_key}",
        "${workflow.secrets.db-creds.user}",
        "u=${workflow.secrets.db-creds.user} n=${workflow.input.count}",
        "${workflow.secrets.${workflow.input.name}}",
        "${workflow.input.${workflow.secrets.field}}",
        "${$.workflow.secrets.api_key}",
    ],
)
def test_secrets_are_left_literal_without_a_resolver(template: str) -> None:
    expected = template.replace("${workflow.input.count}", "2")
    assert resolve(template, CTX) == expected


def test_secret_resolved_as_whole_value() -> None:
    assert resolve("${workflow.secrets.api_key}", CTX, secrets=secret_store({"api_key": "k1"})) == (
        "k1"
    )


def test_secret_resolved_inside_text() -> None:
    secrets = secret_store({"api_key": "k1"})
    template = {"h": ["Bearer ${workflow.secrets.api_key} for ${workflow.input.name}"]}
    assert resolve(template, CTX, secrets=secrets) == {"h": ["Bearer k1 for conductor"]}


def test_secret_with_json_path() -> None:
    secrets = secret_store({"db-creds": '{"user": "neo", "ports": [5432], "tls": true}'})
    assert resolve("${workflow.secrets.db-creds.user}", CTX, secrets=secrets) == "neo"
    assert resolve("${workflow.secrets.db-creds.ports[0]}", CTX, secrets=secrets) == 5432
    assert resolve("${workflow.secrets.db-creds.tls}", CTX, secrets=secrets) is True
    assert resolve("${workflow.secrets.db-creds.$}", CTX, secrets=secrets) == {
        "user": "neo",
        "ports": [5432],
        "tls": True,
    }
    assert resolve("u=${workflow.secrets.db-creds.user}", CTX, secrets=secrets) == "u=neo"
    assert resolve("${workflow.secrets.db-creds.nope}", CTX, secrets=secrets) is None


def test_secret_json_path_on_a_non_json_value_is_null() -> None:
    secrets = secret_store({"plain": "not-json"})
    assert resolve("${workflow.secrets.plain.field}", CTX, secrets=secrets) is None


def test_secret_name_can_come_from_an_inner_expression() -> None:
    secrets = secret_store({"conductor": "s"})
    assert resolve("${workflow.secrets.${workflow.input.name}}", CTX, secrets=secrets) == "s"


def test_missing_secret_raises() -> None:
    with pytest.raises(SecretNotAvailable) as info:
        resolve({"a": ["x ${workflow.secrets.gone}"]}, CTX, secrets=secret_store({}))
    assert info.value.name == "gone"
    assert str(info.value) == "Secret 'gone' not found or not accessible"


def test_invalid_secret_name_raises_without_a_lookup() -> None:
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return "v"

    with pytest.raises(SecretNotAvailable):
        resolve("${workflow.secrets.bad name}", CTX, secrets=lookup)
    assert asked == []


def test_escaped_secret_reference_is_not_resolved() -> None:
    secrets = secret_store({"k": "v"})
    assert resolve("$${workflow.secrets.k}", CTX, secrets=secrets) == "${workflow.secrets.k}"


def test_secret_value_is_inserted_verbatim() -> None:
    secrets = secret_store({"k": "p$${w}d"})
    assert resolve("pw=${workflow.secrets.k}", CTX, secrets=secrets) == "pw=p$${w}d"


def test_each_secret_is_looked_up_once_per_resolve() -> None:
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return '{"a": 1}'

    template = ["${workflow.secrets.k}", "${workflow.secrets.k.a}", "x${workflow.secrets.k}"]
    resolve(template, CTX, secrets=lookup)
    assert asked == ["k"]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", False),
        ("${x}", True),
        ("$${x}", True),
        ({"a": [1, {"b": "a ${x}"}]}, True),
        ({"${x}": 1}, False),
        ([1, None, True], False),
    ],
)
def test_has_expressions(value: Any, expected: bool) -> None:
    assert has_expressions(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${workflow.secrets.k}", True),
        ({"h": ["Bearer ${workflow.secrets.k}"]}, True),
        ("${$.workflow.secrets.k.path}", True),
        ("${workflow.input.${workflow.secrets.k}}", True),
        ("$${workflow.secrets.k}", False),
        ("${workflow.input.secrets}", False),
        ("workflow.secrets.k", False),
    ],
)
def test_references_secrets(value: Any, expected: bool) -> None:
    assert references_secrets(value) is expected


# --------------------------------------------------------------------------- purity


def test_input_is_not_mutated() -> None:
    template = {"a": ["${workflow.input.obj}", {"b": "$${x} ${workflow.input.count}"}]}
    before = copy.deepcopy(template)
    resolve(template, CTX)
    assert template == before


def test_result_does_not_share_objects_with_the_context() -> None:
    ctx = make_context()
    result = resolve({"o": "${workflow.input.obj}", "l": "${t1.output.items[*]}"}, ctx)
    result["o"]["a"]["b"] = 99
    result["l"][0]["id"] = 99
    assert ctx == make_context()


def test_result_does_not_share_containers_with_the_input() -> None:
    template: dict[str, Any] = {"l": [1, [2]], "d": {"k": "v"}}
    result = resolve(template, CTX)
    assert result == template
    assert result["l"] is not template["l"]
    assert result["l"][1] is not template["l"][1]
    assert result["d"] is not template["d"]


# --------------------------------------------------------------------------- text handling


def test_line_terminators_are_preserved() -> None:
    # ParametersUtilsTest.testReplaceWithLineTerminators
    doc = {"name": "conductor", "version": 2}
    template = {
        "k1": "Name: ${name}; Version: ${version};",
        "k2": "Name: ${name};\nVersion: ${version};",
        "k3": "Name: ${name};\rVersion: ${version};",
        "k4": "Name: ${name};\r\nVersion: ${version};",
    }
    assert resolve(template, doc) == {
        "k1": "Name: conductor; Version: 2;",
        "k2": "Name: conductor;\nVersion: 2;",
        "k3": "Name: conductor;\rVersion: 2;",
        "k4": "Name: conductor;\r\nVersion: 2;",
    }


def test_expression_may_span_a_line_break() -> None:
    assert resolve("${\nworkflow.input.count\n}", CTX) == 2


def test_unicode_text_and_values() -> None:
    doc = {"workflow": {"input": {"greeting": "héllo wörld ✓", "名前": "値"}}}
    assert resolve("« ${workflow.input.greeting} » 🚀", doc) == "« héllo wörld ✓ » 🚀"
    assert resolve("${workflow.input.名前}", doc) == "値"
    assert resolve("ключ=${workflow.input.名前}", doc) == "ключ=値"
