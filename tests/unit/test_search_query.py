"""The search query parser, sort and paging checks, and summary shaping: no database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.engine.model import TASK_STATUSES, WORKFLOW_STATUSES, TaskRecord, WorkflowRecord
from app.errors import BadRequest
from app.services.search import (
    SearchParams,
    build_search,
    iso_time,
    parse_free_text,
    parse_query,
    parse_sort,
    task_summary,
    workflow_summary,
)
from app.store.search import (
    TASK_TARGET,
    WORKFLOW_TARGET,
    Clause,
    Search,
    SortKey,
    order_by,
    where_clause,
)


def wf_query(text: str) -> tuple[Clause, ...]:
    return parse_query(text, WORKFLOW_TARGET, WORKFLOW_STATUSES)


def task_query(text: str) -> tuple[Clause, ...]:
    return parse_query(text, TASK_TARGET, TASK_STATUSES)


def error_of(text: str) -> str:
    with pytest.raises(BadRequest) as info:
        wf_query(text)
    return info.value.message


# -- accepted forms -----------------------------------------------------------------------


def test_empty_query_has_no_clauses() -> None:
    assert wf_query("") == ()
    assert wf_query("   ") == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workflowType = 'flow'", Clause("workflowType", "=", ("flow",))),
        ('workflowType="flow"', Clause("workflowType", "=", ("flow",))),
        ("workflowType=flow", Clause("workflowType", "=", ("flow",))),
        ("correlationId != 'c1'", Clause("correlationId", "!=", ("c1",))),
        ("correlationId <> 'c1'", Clause("correlationId", "!=", ("c1",))),
        ("version = 2", Clause("version", "=", (2,))),
        ("version = '2'", Clause("version", "=", (2,))),
        ("startTime > 1700000000000", Clause("startTime", ">", (1_700_000_000_000,))),
        ("startTime >= 5", Clause("startTime", ">=", (5,))),
        ("endTime < 5", Clause("endTime", "<", (5,))),
        ("updateTime <= 5", Clause("updateTime", "<=", (5,))),
        ("priority >= -1", Clause("priority", ">=", (-1,))),
    ],
)
def test_single_clauses(text: str, expected: Clause) -> None:
    assert wf_query(text) == (expected,)


def test_numbers_are_text_for_text_fields() -> None:
    assert wf_query("correlationId = 42") == (Clause("correlationId", "=", ("42",)),)


def test_doubled_quote_inside_quotes_is_one_quote() -> None:
    assert wf_query("correlationId = 'it''s'") == (Clause("correlationId", "=", ("it's",)),)
    assert wf_query('correlationId = "a""b"') == (Clause("correlationId", "=", ('a"b',)),)


def test_quoted_text_keeps_spaces_keywords_and_operators() -> None:
    [clause] = wf_query("correlationId = ' x AND y = (1) '")
    assert clause.values == (" x AND y = (1) ",)


def test_in_list_mixes_bare_and_quoted_values() -> None:
    assert wf_query("status IN (RUNNING, 'FAILED', \"PAUSED\")") == (
        Clause("status", "IN", ("RUNNING", "FAILED", "PAUSED")),
    )


def test_keywords_are_case_insensitive_and_statuses_upper_cased() -> None:
    assert wf_query("workflowType = 'a' and status in (running)") == (
        Clause("workflowType", "=", ("a",)),
        Clause("status", "IN", ("RUNNING",)),
    )


def test_and_joins_clauses_and_parentheses_flatten() -> None:
    expected = (
        Clause("workflowType", "=", ("a",)),
        Clause("version", "=", (1,)),
        Clause("status", "=", ("RUNNING",)),
    )
    assert wf_query("workflowType='a' AND version=1 AND status=RUNNING") == expected
    assert wf_query("(workflowType='a' AND version=1 AND status=RUNNING)") == expected
    assert wf_query("(workflowType='a') AND (version=1 AND (status=RUNNING))") == expected


def test_iso_times_become_epoch_ms() -> None:
    assert wf_query("startTime >= '2023-11-14T22:13:20Z'") == (
        Clause("startTime", ">=", (1_700_000_000_000,)),
    )
    # No offset: UTC.
    assert wf_query("startTime < '1970-01-01T00:00:01.5'") == (Clause("startTime", "<", (1500,)),)


def test_task_fields_map_to_task_columns() -> None:
    clauses = task_query(
        "taskType = 'HTTP' AND status IN (SCHEDULED, IN_PROGRESS) AND referenceTaskName = r"
        " AND scheduledTime > 1"
    )
    assert [c.field for c in clauses] == [
        "taskType",
        "status",
        "referenceTaskName",
        "scheduledTime",
    ]


# -- rejected forms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("nope = 1", "unknown field 'nope'"),
        ("WorkflowType = 'a'", "unknown field 'WorkflowType'"),
        ("status = 'DONE'", "unknown status 'DONE'"),
        ("status IN (RUNNING, DONE)", "unknown status 'DONE'"),
        ("workflowType = 'a' OR status = RUNNING", "OR (at position 20) is not supported"),
        ("(workflowType = 'a' OR version = 1)", "OR (at position 21) is not supported"),
        ("NOT workflowType = 'a'", "NOT (at position 1) is not supported"),
        ("status NOT IN (RUNNING)", "unsupported operator 'NOT'"),
        ("workflowType LIKE 'a%'", "unsupported operator 'LIKE'"),
        ("workflowType = 'a", "unterminated quoted text starting at position 16"),
        ("workflowType == 'a'", "expected a value for 'workflowType', found '=' at position 15"),
        ("workflowType = 'a' AND", "expected a field name, found end of query"),
        ("workflowType = 'a' version = 1", "expected AND or the end of the query"),
        ("workflowType", "expected an operator after 'workflowType', found end of query"),
        ("workflowType =", "expected a value for 'workflowType', found end of query"),
        ("status IN RUNNING", "expected '(' after status IN"),
        ("status IN (RUNNING FAILED)", "expected ',' or ')' in the IN list of 'status'"),
        ("status IN ()", "expected a value for 'status'"),
        ("(workflowType = 'a'", "expected ')' or AND, found end of query"),
        ("workflowType = 'a')", "expected AND or the end of the query, found ')'"),
        ("version = 'two'", "'version' needs an integer"),
        ("version = 1.5", "'version' needs an integer"),
        ("version = 99999999999", "out of range"),
        ("startTime > 'yesterday'", "needs epoch milliseconds or an ISO-8601 time"),
        ("workflowType > 'a'", "operator '>' needs a numeric or time field"),
        ("status >= RUNNING", "operator '>=' needs a numeric or time field"),
        ("workflowType = 'a' ; DROP TABLE workflows", "expected AND or the end of the query"),
        ("workflowType ! 'a'", "unexpected character '!' at position 14"),
    ],
)
def test_rejected_queries_name_the_problem(text: str, fragment: str) -> None:
    message = error_of(text)
    assert message.startswith("Invalid search query: ")
    assert fragment in message


def test_task_def_name_is_not_searchable() -> None:
    with pytest.raises(BadRequest, match="unknown field 'taskDefName'"):
        task_query("taskDefName = 'x'")


def test_workflow_only_fields_are_unknown_for_tasks() -> None:
    with pytest.raises(BadRequest, match="unknown field 'workflowType'"):
        task_query("workflowType = 'x'")


# -- sort, free text, paging ----------------------------------------------------------------


def test_sort_forms() -> None:
    assert parse_sort([], WORKFLOW_TARGET) == ()
    assert parse_sort(["startTime:DESC"], WORKFLOW_TARGET) == (SortKey("startTime", True),)
    assert parse_sort(["workflowType|startTime:desc"], WORKFLOW_TARGET) == (
        SortKey("workflowType", False),
        SortKey("startTime", True),
    )
    assert parse_sort(["version:ASC", "endTime : DESC"], WORKFLOW_TARGET) == (
        SortKey("version", False),
        SortKey("endTime", True),
    )


@pytest.mark.parametrize(
    ("sort", "fragment"),
    [
        ("bogus:ASC", "unknown field 'bogus'"),
        ("startTime:UP", "the direction must be ASC or DESC"),
        ("startTime:", "the direction must be ASC or DESC"),
        ("startTime:DESC,version:ASC", "the direction must be ASC or DESC"),
    ],
)
def test_bad_sorts(sort: str, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_sort([sort], WORKFLOW_TARGET)


def test_free_text_star_or_blank_is_no_filter() -> None:
    assert parse_free_text("*") is None
    assert parse_free_text(" ") is None
    assert parse_free_text(None) is None
    assert parse_free_text("50%") == "50%"


def test_size_and_start_limits() -> None:
    def build(start: int = 0, size: int = 100) -> Search:
        params = SearchParams(start=start, size=size)
        return build_search(params, WORKFLOW_TARGET, WORKFLOW_STATUSES, "workflows")

    assert build(size=5000).size == 5000
    with pytest.raises(BadRequest, match="Cannot return more than 5000 workflows"):
        build(size=5001)
    with pytest.raises(BadRequest, match="size must not be negative"):
        build(size=-1)
    with pytest.raises(BadRequest, match="start must not be negative"):
        build(start=-1)


# -- SQL --------------------------------------------------------------------------------


def _sql(search: Search, dialect: sa.Dialect) -> str:
    stmt = (
        sa.select(WORKFLOW_TARGET.table.c.doc)
        .where(*where_clause(WORKFLOW_TARGET, search, dialect.name))
        .order_by(*order_by(WORKFLOW_TARGET, search.sort))
    )
    return str(stmt.compile(dialect=dialect))


def test_sql_uses_columns_and_binds_values() -> None:
    search = Search(clauses=wf_query("workflowType = 'x''; --' AND status IN (RUNNING)"))
    sql = _sql(search, postgresql.dialect())  # type: ignore[no-untyped-call]
    assert "workflows.name = %(name_1)s" in sql
    assert "workflows.status IN (__[POSTCOMPILE_status_1])" in sql
    assert "--" not in sql
    assert "ORDER BY workflows.created_at DESC, workflows.workflow_id ASC" in sql


def test_not_equal_on_a_nullable_column_keeps_nulls() -> None:
    sql = _sql(Search(clauses=wf_query("correlationId != 'c'")), sqlite.dialect())
    assert "workflows.correlation_id != ? OR workflows.correlation_id IS NULL" in sql


def test_free_text_sql_per_dialect() -> None:
    search = Search(free_text="50%_off")
    assert "instr(workflows.doc, ?) > ?" in _sql(search, sqlite.dialect())
    pg_dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    [cond] = where_clause(WORKFLOW_TARGET, search, "postgresql")
    compiled = cond.compile(dialect=pg_dialect)
    assert str(compiled) == "workflows.doc LIKE '%%' || %(doc_1)s::VARCHAR || '%%' ESCAPE '/'"
    # The LIKE wildcards in the text are escaped, so they match themselves.
    assert compiled.params == {"doc_1": "50/%/_off"}


def test_nullable_sort_columns_put_nulls_last() -> None:
    search = Search(sort=parse_sort(["endTime:ASC|version:DESC"], WORKFLOW_TARGET))
    sql = _sql(search, sqlite.dialect())
    assert "ORDER BY workflows.end_time ASC NULLS LAST, workflows.version DESC" in sql


# -- shaping ------------------------------------------------------------------------------


def test_iso_time() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_workflow_summary_shape() -> None:
    wf = WorkflowRecord(
        workflowId="w1",
        workflowName="flow",
        workflowVersion=2,
        status="FAILED",
        input={"a": [1, "é"]},
        output={},
        createTime=1_700_000_000_000,
        updateTime=1_700_000_000_500,
        endTime=1_700_000_001_250,
        failedReferenceTaskNames=["r1", "r2"],
        failedTaskNames=["t2", "t1", "t2"],
        reasonForIncompletion="boom",
    )
    assert workflow_summary(wf) == {
        "workflowType": "flow",
        "version": 2,
        "workflowId": "w1",
        "startTime": "2023-11-14T22:13:20.000Z",
        "updateTime": "2023-11-14T22:13:20.500Z",
        "endTime": "2023-11-14T22:13:21.250Z",
        "status": "FAILED",
        "input": '{"a":[1,"é"]}',
        "output": "{}",
        "reasonForIncompletion": "boom",
        "executionTime": 1250,
        "failedReferenceTaskNames": "r1,r2",
        "failedTaskNames": ["t1", "t2"],
        "priority": 0,
        "taskToDomain": {},
    }


def test_running_workflow_summary_has_no_end_time() -> None:
    wf = WorkflowRecord("w1", "flow", 1, "RUNNING", createTime=5, updateTime=6)
    summary = workflow_summary(wf)
    assert "endTime" not in summary
    assert summary["executionTime"] == 0


def test_task_summary_shape() -> None:
    task = TaskRecord(
        taskId="t1",
        workflowInstanceId="w1",
        referenceTaskName="a",
        taskType="task_a",
        taskDefName="task_a",
        status="COMPLETED",
        inputData={"x": 1},
        outputData={"y": None},
        scheduledTime=1000,
        startTime=1500,
        endTime=4000,
        updateTime=4000,
        workflowType="flow",
        workflowPriority=3,
    )
    assert task_summary(task) == {
        "workflowId": "w1",
        "workflowType": "flow",
        "scheduledTime": "1970-01-01T00:00:01.000Z",
        "startTime": "1970-01-01T00:00:01.500Z",
        "updateTime": "1970-01-01T00:00:04.000Z",
        "endTime": "1970-01-01T00:00:04.000Z",
        "status": "COMPLETED",
        "executionTime": 2500,
        "queueWaitTime": 500,
        "taskDefName": "task_a",
        "taskType": "task_a",
        "input": '{"x":1}',
        "output": '{"y":null}',
        "taskId": "t1",
        "workflowPriority": 3,
    }
