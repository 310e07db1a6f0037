"""A sandboxed JavaScript evaluator (embedded V8 via mini-racer) for INLINE, SWITCH, DO_WHILE
and LAMBDA expressions.

Semantics (Conductor's GraalJS evaluator): the expression is run as a *script* whose completion
value is the result (`$.a + $.b`, `(function(){ return 1; })()`, `if (c) { true; } else
{ false; }`), with `$` bound to the task input. The result crosses back as JSON text made by
`JSON.stringify` inside V8: objects -> dict, arrays -> list, undefined/null/functions/symbols ->
None, Date -> ISO string, Map -> dict, Set -> list, integral numbers -> int, others -> float.

Isolation. Creating and hardening a V8 isolate costs ~8 ms while an evaluation in a reused one
costs ~0.4 ms, so isolates are pooled and hardened once, when created ("lockdown"):

* host-ish and asynchronous facilities are removed: mini-racer's `setTimeout`/`clearTimeout`,
  `WebAssembly`, `FinalizationRegistry`, `Atomics`, and the binary buffers (`ArrayBuffer`,
  `SharedArrayBuffer`, `DataView`, typed arrays — their memory lives outside the V8 heap, so the
  heap limit would not bound it). V8 alone has no file, network or process access and no Python
  callback is ever exposed;
* every intrinsic reachable from the global object (plus the hidden ones: iterator, generator
  and async-function prototypes ...) is deep-frozen, and every builtin global binding is made
  read-only, so no script can change what the next one sees. The legacy `RegExp.$1`-style
  statics (which remember the last match) are deleted. Assigning an own property that shadows
  a frozen prototype property (`obj.toString = ...`, `err.name = ...`) still works for
  Object.prototype and the Error prototypes (accessors that define the own property instead);
* each evaluation runs the script through a sloppy-mode direct `eval` inside a fresh function,
  so its `var`/`let`/`function` declarations are local. The promise callbacks it queued are run
  right after it, within its time limit, and then the implicit globals it created (`x = 1`,
  `globalThis.y = 2`) are deleted. A script that leaves anything that cannot be taken back (a
  non-configurable global, a non-extensible global object, a changed global prototype) gets its
  isolate discarded, as does any isolate that hit the time or memory limit.

Thread safety: an isolate is checked out of the pool by one caller at a time. `evaluate()` runs
`evaluate_sync()` in a dedicated thread pool, so the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from py_mini_racer import JSEvalException, JSOOMException, MiniRacer, init_mini_racer

__all__ = ["JsEvaluator", "ScriptError", "ScriptMemoryLimit", "ScriptTimeout"]

_T = TypeVar("_T")

# V8's flags, given when the first isolate initialises V8 (lazily: a server that runs no
# JavaScript does not load it). mini-racer's default is --single-threaded; on CPUs with
# memory protection keys (PKU: recent AMD EPYC and Intel Xeon) V8 then write-protects its
# code space per thread, and an isolate on another thread than the one that initialised V8
# crashed the process (SIGSEGV; seen with mini-racer 0.13.2-0.14.1). Our isolates each live
# on a thread of their own, so the keys are turned off.
_V8_FLAGS = ("--single-threaded", "--no-memory-protection-keys")


class ScriptError(Exception):
    """A syntax or runtime error in the script; the message is the JS error text
    (e.g. `TypeError: Cannot read properties of undefined (reading 'x')`)."""


class ScriptTimeout(ScriptError):
    """The script exceeded its time limit."""


class ScriptMemoryLimit(ScriptError):
    """The script exceeded the isolate's heap limit."""


# Installed once per isolate. Defines two read-only globals:
# `__baton_run(code, inputJson)` -> "R" + result JSON, or "E" + error text, or "X" when
#   leftovers of an earlier evaluation could not be removed (nothing was run);
# `__baton_settle()` -> "1" when the isolate is clean again and may be reused, else "0".
_LOCKDOWN_JS = r"""
(function (g) {
  'use strict';
  const {
    defineProperty, freeze, getOwnPropertyDescriptor, getPrototypeOf, fromEntries, isExtensible,
  } = Object;
  const { apply, ownKeys, deleteProperty } = Reflect;
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const arrayFrom = Array.from;
  const isSafeInteger = Number.isSafeInteger;
  const toNumber = Number;
  const toStr = String;
  const MapCtor = Map;
  const SetCtor = Set;
  const hasOwn = Object.hasOwn;

  // mini-racer's timer helpers are script-level `var`s (non-deletable): neutralise them.
  for (const name of ['setTimeout', 'clearTimeout', '__timer_manager']) {
    if (hasOwn(g, name)) g[name] = undefined;
  }
  const removed = [
    'WebAssembly', 'FinalizationRegistry', 'Atomics', 'SharedArrayBuffer', 'ArrayBuffer',
    'DataView', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
    'Int32Array', 'Uint32Array', 'Float16Array', 'Float32Array', 'Float64Array',
    'BigInt64Array', 'BigUint64Array',
  ];
  for (const name of removed) deleteProperty(g, name);
  for (const name of ownKeys(RegExp)) {
    if (typeof name === 'string' && (name[0] === '$' || /^(input|last|left|right)/.test(name))) {
      deleteProperty(RegExp, name);
    }
  }

  // Let sloppy scripts shadow frozen prototype properties by assignment (the "override
  // mistake"): `o.toString = f` defines an own property on `o` instead of failing silently.
  function enableOverride(proto, key) {
    const desc = getOwnPropertyDescriptor(proto, key);
    if (!desc || !('value' in desc) || !desc.configurable) return;
    const value = desc.value;
    defineProperty(proto, key, {
      get: function () { return value; },
      set: function (newValue) {
        if (this === proto || this === null || this === undefined) return;
        if (typeof this !== 'object' && typeof this !== 'function') return;
        if (hasOwn(this, key)) {
          this[key] = newValue;
        } else {
          defineProperty(this, key, {
            value: newValue, writable: true, enumerable: true, configurable: true,
          });
        }
      },
      enumerable: desc.enumerable,
      configurable: false,
    });
  }
  for (const key of ownKeys(Object.prototype)) {
    if (key !== '__proto__') enableOverride(Object.prototype, key);
  }
  const errors = [
    Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError,
    AggregateError,
  ];
  if (typeof SuppressedError === 'function') errors.push(SuppressedError);
  for (const E of errors) {
    for (const key of ['name', 'message', 'constructor', 'toString']) {
      enableOverride(E.prototype, key);
    }
  }

  // Intrinsics not reachable by walking properties from the global object.
  const roots = [g];
  const probes = [
    () => function* () {},
    () => async function () {},
    () => async function* () {},
    () => (function* () {})(),
    () => (async function* () {})(),
    () => [][Symbol.iterator](),
    () => new Map()[Symbol.iterator](),
    () => new Set()[Symbol.iterator](),
    () => ''[Symbol.iterator](),
    () => /a/[Symbol.matchAll](''),
    () => [].values().map((x) => x),
    () => Iterator.from({ next() { return { done: true }; } }),
    () => new Intl.Segmenter().segment(''),
    () => new Intl.Segmenter().segment('')[Symbol.iterator](),
    () => (function () { return arguments; })(),
    () => (function () { 'use strict'; return arguments; })(),
  ];
  for (const probe of probes) {
    try { roots.push(probe()); } catch (e) { /* not supported by this V8 */ }
  }
  if (typeof __TimerManager === 'function') roots.push(__TimerManager);

  const seen = new Set();
  const stack = roots.slice();
  while (stack.length) {
    const o = stack.pop();
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) {
      continue;
    }
    seen.add(o);
    stack.push(getPrototypeOf(o));
    for (const key of ownKeys(o)) {
      const desc = getOwnPropertyDescriptor(o, key);
      if ('value' in desc) {
        stack.push(desc.value);
      } else {
        stack.push(desc.get, desc.set);
      }
    }
  }
  seen.delete(g);
  for (const o of seen) freeze(o);

  // The global object stays extensible (sloppy `x = 1` must work) but its builtin bindings
  // become read-only and permanent, so the set of keys below is all that may persist.
  for (const key of ownKeys(g)) {
    const desc = getOwnPropertyDescriptor(g, key);
    if ('value' in desc) {
      defineProperty(g, key, { writable: false, configurable: false });
    } else {
      defineProperty(g, key, { configurable: false });
    }
  }

  // A sloppy function whose only scope is the global one: a direct eval in it gives the
  // script a fresh function scope for its declarations and returns its completion value.
  const exec = (0, eval)('(function ($) { return eval(arguments[1]); })');
  freeze(exec.prototype);
  freeze(exec);

  const baselineKeys = new Set(ownKeys(g));
  baselineKeys.add('__baton_run');
  baselineKeys.add('__baton_settle');
  const baselineCount = baselineKeys.size;
  const globalProto = getPrototypeOf(g);

  // Remove globals a script created; false when that is impossible.
  function clean() {
    if (getPrototypeOf(g) !== globalProto || !isExtensible(g)) return false;
    const keys = ownKeys(g);
    if (keys.length === baselineCount) return true;
    for (const key of keys) {
      if (!baselineKeys.has(key) && !deleteProperty(g, key)) return false;
    }
    return ownKeys(g).length === baselineCount;
  }

  function replacer(key, value) {
    switch (typeof value) {
      case 'undefined':
      case 'function':
      case 'symbol':
        return null;
      case 'bigint': {
        const n = toNumber(value);
        return isSafeInteger(n) ? n : toStr(value);
      }
      case 'object':
        if (value instanceof MapCtor) return fromEntries(value);
        if (value instanceof SetCtor) return arrayFrom(value);
        return value;
      default:
        return value;
    }
  }

  function describe(error) {
    try {
      return toStr(error);
    } catch (e) {
      return 'Uncaught exception';
    }
  }

  const run = (code, inputJson) => {
    if (!clean()) return 'X';
    try {
      const value = apply(exec, undefined, [parse(inputJson), code]);
      const text = stringify(value, replacer);
      return 'R' + (text === undefined ? 'null' : text);
    } catch (error) {
      return 'E' + describe(error);
    }
  };
  // Runs as a separate task after `run`, i.e. after the microtasks (promise callbacks) the
  // script queued, which V8 runs only once the evaluating task has delivered its result.
  const settle = () => (clean() ? '1' : '0');
  for (const [name, fn] of [['__baton_run', run], ['__baton_settle', settle]]) {
    freeze(fn);
    defineProperty(g, name, { value: fn, writable: false, enumerable: false, configurable: false });
  }
})(globalThis);
'ok';
"""


def _parse_float(text: str) -> int | float:
    """JSON numbers with a fraction or an exponent (JSON.stringify prints integral numbers
    >= 1e21 as `1e+21`): integral values become int."""
    value = float(text)
    if value.is_integer():
        return int(value)
    return value


class _Isolate:
    """One hardened V8 isolate, driven from an asyncio loop on a thread of its own (mini-racer
    delivers its results through the loop its MiniRacer was created on)."""

    def __init__(self, max_memory_bytes: int) -> None:
        self.uses = 0
        self._needs_drain = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="baton-js-isolate", daemon=True)
        self._thread.start()
        try:
            self.racer = self.call(self._setup(max_memory_bytes))
        except BaseException:
            self._stop_loop()
            raise

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _setup(self, max_memory_bytes: int) -> MiniRacer:
        init_mini_racer(flags=_V8_FLAGS, ignore_duplicate_init=True)
        racer = MiniRacer()  # binds to the running loop: ours
        try:
            racer.set_hard_memory_limit(max_memory_bytes)
            racer.set_soft_memory_limit(max_memory_bytes * 3 // 4)
            if await asyncio.wait_for(racer.eval_cancelable(_LOCKDOWN_JS), 10) != "ok":
                raise RuntimeError("JavaScript sandbox setup failed")
        except BaseException:
            racer.close()
            raise
        return racer

    async def run(self, source: str, limit_s: float) -> tuple[str, bool]:
        """Run `__baton_run(...)` source; returns its raw result and whether the isolate is
        clean enough to be reused."""
        started = time.monotonic()
        try:
            raw = await asyncio.wait_for(self.racer.eval_cancelable(source), limit_s)
        except TimeoutError:
            self._needs_drain = True  # V8 still reports the terminated task to our loop
            raise
        if not isinstance(raw, str) or raw == "X":
            return "X", False
        # Let the promise callbacks the script queued run now, on its time budget.
        remaining = max(limit_s - (time.monotonic() - started), 0.005)
        settled = await asyncio.wait_for(self.racer.eval_cancelable("__baton_settle()"), remaining)
        return raw, settled == "1"

    async def _drain(self) -> None:
        await asyncio.wait_for(self.racer.eval_cancelable("0"), 0.5)

    def dispose(self) -> None:
        if self._needs_drain:
            # A terminated evaluation still reports back to the loop: one last round trip
            # makes sure that happened before the loop goes away. (When the isolate is stuck
            # in promise callbacks instead, closing it is what stops them.)
            with contextlib.suppress(Exception):
                self.call(self._drain())
        # Closed on the isolate's own thread, where it was created and ran (V8 objects freed
        # from a foreign thread were a suspect in a crashed test worker); directly only if
        # that thread does not answer.
        closed = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
        try:
            closed.result(timeout=10)
        except Exception:
            with contextlib.suppress(Exception):
                self.racer.close()
        self._stop_loop()

    async def _close(self) -> None:
        self.racer.close()


class JsEvaluator:
    """Evaluates JavaScript expressions in pooled, hardened V8 isolates."""

    def __init__(
        self,
        *,
        timeout_ms: int = 4000,
        max_memory_bytes: int = 64 * 1024 * 1024,
        workers: int = 2,
        max_uses_per_isolate: int = 10_000,
    ) -> None:
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        if workers <= 0:
            raise ValueError("workers must be positive")
        self._timeout_ms = timeout_ms
        self._max_memory_bytes = max_memory_bytes
        self._max_uses = max_uses_per_isolate
        self._max_idle = workers + 2
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="baton-js")
        self._lock = threading.Lock()
        self._idle: list[_Isolate] = []
        self._closed = False
        # Free the isolates while their loop threads are still alive, even if the owner forgot.
        atexit.register(self.close)

    @property
    def timeout_ms(self) -> int:
        """The default per-evaluation time limit."""
        return self._timeout_ms

    # -- public API ---------------------------------------------------------------------------

    def evaluate_sync(
        self, expression: str, bindings: dict[str, Any], timeout_ms: int | None = None
    ) -> Any:
        """Evaluate `expression` with `$` bound to `bindings`; blocks the calling thread."""
        if not isinstance(expression, str):
            raise ScriptError("The script must be a string")
        limit_ms = self._timeout_ms if timeout_ms is None else max(1, int(timeout_ms))
        try:
            input_json = json.dumps(bindings, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ScriptError(f"The script input is not valid JSON: {exc}") from None
        # Code and data enter V8 only as JSON string literals; both are parsed inside V8.
        source = f"__baton_run({json.dumps(expression)},{json.dumps(input_json)})"

        limit_s = limit_ms / 1000
        for _attempt in range(2):
            isolate = self._acquire()
            reusable = False
            try:
                raw, reusable = isolate.call(isolate.run(source, limit_s))
            except TimeoutError:
                raise ScriptTimeout(
                    f"Script evaluation exceeded the time limit of {limit_ms} ms"
                ) from None
            except JSEvalException as exc:
                if isinstance(exc, JSOOMException) or isolate.racer.was_hard_memory_limit_reached():
                    raise ScriptMemoryLimit(
                        "Script evaluation exceeded the memory limit of "
                        f"{self._max_memory_bytes // (1024 * 1024)} MiB"
                    ) from None
                raise ScriptError(_first_line(str(exc))) from None
            finally:
                self._release(isolate, reusable)
            if raw == "X":
                continue  # could not be reset: retry once on a fresh isolate
            if not isinstance(raw, str) or raw[:1] not in ("R", "E"):  # pragma: no cover
                raise ScriptError("Unexpected result from the script sandbox")
            if raw[0] == "E":
                raise ScriptError(raw[1:] or "Script evaluation failed")
            try:
                return json.loads(raw[1:], parse_float=_parse_float)
            except (ValueError, RecursionError) as exc:
                raise ScriptError(f"The script result could not be converted: {exc}") from None
        raise ScriptError("The script sandbox could not be reset")  # pragma: no cover

    async def evaluate(
        self, expression: str, bindings: dict[str, Any], timeout_ms: int | None = None
    ) -> Any:
        """Evaluate in the evaluator's own thread pool; the event loop keeps running."""
        if self._closed:
            raise RuntimeError("JsEvaluator is closed")
        loop = asyncio.get_running_loop()
        call = functools.partial(self.evaluate_sync, expression, bindings, timeout_ms)
        return await loop.run_in_executor(self._executor, call)

    def close(self) -> None:
        """Free every isolate and stop the thread pool (waits for running evaluations)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        atexit.unregister(self.close)
        self._executor.shutdown(wait=True)
        for isolate in idle:
            isolate.dispose()
        # Isolates still checked out by evaluate_sync callers are disposed on release.

    # -- isolate pool -------------------------------------------------------------------------

    def _acquire(self) -> _Isolate:
        with self._lock:
            if self._closed:
                raise RuntimeError("JsEvaluator is closed")
            if self._idle:
                return self._idle.pop()
        return _Isolate(self._max_memory_bytes)

    def _release(self, isolate: _Isolate, reusable: bool) -> None:
        isolate.uses += 1
        if reusable and isolate.uses < self._max_uses:
            with self._lock:
                if not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(isolate)
                    return
        isolate.dispose()


def _first_line(message: str) -> str:
    """mini-racer prefixes V8 messages with `<anonymous>:1: ` and appends the source line."""
    for line in message.splitlines():
        line = line.strip()
        if line:
            if line.startswith("<anonymous>:"):
                parts = line.split(": ", 1)
                if len(parts) == 2:
                    line = parts[1]
            return line
    return message or "Script evaluation failed"
