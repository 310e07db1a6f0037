"""Isolates created and used on several threads at once do not crash the process.

On CPUs with memory protection keys (PKU), V8 write-protects its code space per thread and a
second thread's isolate crashed the whole server (SIGSEGV) unless the keys are turned off.
The check runs in a child process, since a crash would take the test runner down with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import threading
    from app.tasks.js import JsEvaluator

    evaluator = JsEvaluator(workers=4)
    results = []

    def run(i):
        results.append(evaluator.evaluate_sync("$.a * 2", {"a": i}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    evaluator.close()
    print(sorted(results))
    """
)


def test_isolates_on_several_threads_at_once_evaluate_without_crashing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[0, 2, 4, 6]"
