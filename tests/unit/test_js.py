"""The sandboxed JavaScript evaluator (app/tasks/js.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.tasks.js import JsEvaluator, ScriptError, ScriptMemoryLimit, ScriptTimeout


@pytest.fixture(scope="module")
def js() -> Iterator[JsEvaluator]:
    evaluator = JsEvaluator(workers=2)
    yield evaluator
    evaluator.close()


def run(js: JsEvaluator, expression: str, bindings: dict[str, Any] | None = None) -> Any:
    return js.evaluate_sync(expression, bindings or {})


# -- expressions and their completion value -----------------------------------------------------


def test_arithmetic_on_dollar(js: JsEvaluator) -> None:
    assert run(js, "$.a + $.b", {"a": 1, "b": 2}) == 3


def test_iife_return_value(js: JsEvaluator) -> None:
    assert run(js, "(function(){ return $.name + '!'; })()", {"name": "baton"}) == "baton!"


def test_if_else_completion_value(js: JsEvaluator) -> None:
    script = "if ($.x > 1) { true; } else { false; }"
    assert run(js, script, {"x": 2}) is True
    assert run(js, script, {"x": 0}) is False


def test_last_statement_value_after_declarations(js: JsEvaluator) -> None:
    assert run(js, "var total = 0; for (var i of $.xs) { total += i; } total", {"xs": [1, 2]}) == 3


def test_do_while_style_condition_on_nested_input(js: JsEvaluator) -> None:
    script = "if ($.loopTask['iteration'] < $.value) { true; } else { false; }"
    assert run(js, script, {"loopTask": {"iteration": 1}, "value": 3}) is True


def test_bindings_are_deep_json_values(js: JsEvaluator) -> None:
    bindings = {"o": {"list": [1, {"k": None}], "s": "é\u2028"}}
    assert run(js, "$", bindings) == bindings


# -- result mapping -----------------------------------------------------------------------------


def test_object_maps_to_dict(js: JsEvaluator) -> None:
    assert run(js, "({a: 1, b: 'x', c: true})") == {"a": 1, "b": "x", "c": True}


def test_array_maps_to_list(js: JsEvaluator) -> None:
    assert run(js, "[1, 'two', false, null]") == [1, "two", False, None]


def test_nested_structures_map_recursively(js: JsEvaluator) -> None:
    assert run(js, "({list: [{deep: [1, {x: 2.5}]}]})") == {"list": [{"deep": [1, {"x": 2.5}]}]}


def test_undefined_maps_to_none(js: JsEvaluator) -> None:
    assert run(js, "undefined") is None
    assert run(js, "$.missing") is None


def test_null_maps_to_none(js: JsEvaluator) -> None:
    assert run(js, "null") is None


def test_undefined_inside_structures_maps_to_none(js: JsEvaluator) -> None:
    assert run(js, "({a: undefined, b: [undefined]})") == {"a": None, "b": [None]}


def test_integral_float_maps_to_int(js: JsEvaluator) -> None:
    result = run(js, "2.0 * 3")
    assert result == 6
    assert type(result) is int


def test_non_integral_number_maps_to_float(js: JsEvaluator) -> None:
    assert run(js, "7 / 2") == 3.5


def test_large_integral_number_maps_to_int(js: JsEvaluator) -> None:
    assert run(js, "1e21") == 10**21


def test_functions_and_symbols_map_to_none(js: JsEvaluator) -> None:
    assert run(js, "({f: function () {}, s: Symbol('x')})") == {"f": None, "s": None}
    assert run(js, "(function () {})") is None


def test_date_maps_to_iso_string(js: JsEvaluator) -> None:
    assert run(js, "new Date(0)") == "1970-01-01T00:00:00.000Z"


def test_map_and_set_map_to_dict_and_list(js: JsEvaluator) -> None:
    assert run(js, "({m: new Map([['k', 1]]), s: new Set([1, 2])})") == {"m": {"k": 1}, "s": [1, 2]}


# -- errors -------------------------------------------------------------------------------------


def test_syntax_error_raises_script_error_with_message(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError, match=r"^SyntaxError: ") as info:
        run(js, "this is not javascript(")
    assert not isinstance(info.value, ScriptTimeout)


def test_thrown_error_message_is_reported(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError) as info:
        run(js, "throw new Error('boom')")
    assert str(info.value) == "Error: boom"


def test_runtime_type_error_message_is_reported(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError, match=r"^TypeError: Cannot read properties of undefined"):
        run(js, "$.missing.field")


def test_thrown_non_error_value_is_reported(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError) as info:
        run(js, "throw 'plain string'")
    assert str(info.value) == "plain string"


def test_stack_overflow_is_a_script_error(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError, match="Maximum call stack size exceeded"):
        run(js, "function f() { return f(); } f()")


def test_non_json_bindings_are_rejected(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError, match="not valid JSON"):
        js.evaluate_sync("$", {"x": object()})


# -- limits -------------------------------------------------------------------------------------


def test_infinite_loop_times_out_within_the_limit(js: JsEvaluator) -> None:
    started = time.monotonic()
    with pytest.raises(ScriptTimeout, match="200 ms"):
        js.evaluate_sync("while (true) {}", {}, timeout_ms=200)
    assert time.monotonic() - started < 2
    assert run(js, "1 + 1") == 2  # the evaluator still works


def test_runaway_promise_callback_times_out(js: JsEvaluator) -> None:
    started = time.monotonic()
    with pytest.raises(ScriptTimeout):
        js.evaluate_sync("Promise.resolve().then(() => { while (true) {} }); 1", {}, 200)
    assert time.monotonic() - started < 2
    assert run(js, "2 + 2") == 4


def test_memory_bomb_fails_without_crashing() -> None:
    evaluator = JsEvaluator(max_memory_bytes=16 * 1024 * 1024, timeout_ms=4000, workers=1)
    try:
        with pytest.raises(ScriptError) as info:
            evaluator.evaluate_sync(
                "var a = []; while (true) { a.push(new Array(1000).fill(1)); }", {}
            )
        assert isinstance(info.value, ScriptMemoryLimit | ScriptTimeout)
        assert evaluator.evaluate_sync("$.x * 2", {"x": 21}) == 42
    finally:
        evaluator.close()


def test_string_doubling_bomb_fails_without_crashing(js: JsEvaluator) -> None:
    with pytest.raises(ScriptError):
        run(js, "var s = 'x'; while (true) { s = s + s; }")
    assert run(js, "'ok'") == "ok"


def test_external_memory_buffers_are_unavailable(js: JsEvaluator) -> None:
    script = "[typeof ArrayBuffer, typeof Uint8Array, typeof SharedArrayBuffer, typeof WebAssembly]"
    assert run(js, script) == ["undefined"] * 4


# -- sandbox ------------------------------------------------------------------------------------


def test_no_host_objects_are_available(js: JsEvaluator) -> None:
    names = [
        "require",
        "process",
        "fetch",
        "XMLHttpRequest",
        "setTimeout",
        "setInterval",
        "Deno",
        "Bun",
        "module",
        "exports",
        "window",
        "importScripts",
        "__dirname",
    ]
    script = "[" + ", ".join(f"typeof {name}" for name in names) + "]"
    assert run(js, script) == ["undefined"] * len(names)


def test_var_declarations_do_not_leak_between_evaluations(js: JsEvaluator) -> None:
    run(js, "var leakedVar = $.secret; function leakedFn() {} let leakedLet = 1; 0", {"secret": 1})
    assert run(js, "[typeof leakedVar, typeof leakedFn, typeof leakedLet]") == ["undefined"] * 3


def test_implicit_globals_do_not_leak_between_evaluations(js: JsEvaluator) -> None:
    run(js, "leaked1 = 1; globalThis.leaked2 = 2; this.leaked3 = 3; 0")
    assert run(js, "[typeof leaked1, typeof leaked2, typeof leaked3]") == ["undefined"] * 3


def test_builtins_cannot_be_replaced_for_later_evaluations(js: JsEvaluator) -> None:
    run(js, "JSON.stringify = null; Math = null; Array.prototype.map = null; parseInt = null; 0")
    assert run(js, "[typeof JSON.stringify, typeof Math, typeof [].map, typeof parseInt]") == [
        "function",
        "object",
        "function",
        "function",
    ]


def test_prototype_pollution_does_not_leak(js: JsEvaluator) -> None:
    run(js, "Object.prototype.polluted = 1; Object.getPrototypeOf([].values()).next = null; 0")
    assert run(js, "[({}).polluted, [...[1, 2]]]") == [None, [1, 2]]


def test_non_deletable_global_does_not_leak(js: JsEvaluator) -> None:
    run(js, "Object.defineProperty(globalThis, 'pinned', {value: 1}); 0")
    assert run(js, "typeof pinned") == "undefined"


def test_promise_callback_globals_do_not_leak(js: JsEvaluator) -> None:
    run(js, "Promise.resolve().then(() => { globalThis.late = 1; }); 0")
    assert run(js, "typeof late") == "undefined"


def test_non_extensible_global_does_not_leak(js: JsEvaluator) -> None:
    run(js, "Object.preventExtensions(globalThis); 0")
    assert run(js, "implicitGlobal = 5; implicitGlobal") == 5


def test_regexp_last_match_does_not_leak(js: JsEvaluator) -> None:
    run(js, "/secret-(\\w+)/.exec($.s); 0", {"s": "secret-value"})
    assert run(js, "typeof RegExp.$1 === 'undefined' || RegExp.$1 === ''") is True


def test_shadowing_frozen_prototype_members_still_works(js: JsEvaluator) -> None:
    script = "var o = {}; o.toString = function () { return 'custom'; }; var e = new Error('m');"
    script += " e.name = 'MyError'; [String(o), String(e)]"
    assert run(js, script) == ["custom", "MyError: m"]


def test_injection_in_bindings_is_just_data(js: JsEvaluator) -> None:
    payload = '"); throw 1; ("'
    assert run(js, "$.v", {"v": payload}) == payload
    assert run(js, "$['\"); throw 1; (\"']", {payload: 7}) == 7


def test_script_sees_only_its_own_bindings(js: JsEvaluator) -> None:
    assert run(js, "$.a", {"a": 1}) == 1
    assert run(js, "$.a", {"b": 2}) is None


# -- concurrency --------------------------------------------------------------------------------


async def test_concurrent_evaluations_are_all_correct(js: JsEvaluator) -> None:
    results = await asyncio.gather(
        *(js.evaluate("(function(){ var x = $.i; return x * 2; })()", {"i": i}) for i in range(100))
    )
    assert results == [i * 2 for i in range(100)]


def test_evaluate_sync_from_many_threads(js: JsEvaluator) -> None:
    errors: list[str] = []

    def worker(n: int) -> None:
        for i in range(25):
            value = js.evaluate_sync("$.n * 100 + $.i", {"n": n, "i": i})
            if value != n * 100 + i:
                errors.append(f"{n}/{i}: {value}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


async def test_event_loop_stays_responsive_during_a_long_evaluation(js: JsEvaluator) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        result = await js.evaluate(
            "var end = Date.now() + 300; while (Date.now() < end) {} 'done'", {}
        )
    finally:
        task.cancel()
    assert result == "done"
    assert ticks >= 10


async def test_evaluate_sync_works_inside_a_running_loop(js: JsEvaluator) -> None:
    assert js.evaluate_sync("$.x + 1", {"x": 1}) == 2


def test_closed_evaluator_refuses_work() -> None:
    evaluator = JsEvaluator(workers=1)
    assert evaluator.evaluate_sync("1", {}) == 1
    evaluator.close()
    with pytest.raises(RuntimeError, match="closed"):
        evaluator.evaluate_sync("1", {})
