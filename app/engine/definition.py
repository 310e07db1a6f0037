"""Where each task sits in a workflow definition, so the decider can find what comes next.

Built once per definition and cached: the decider asks it on every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from app.schemas.metadata import WorkflowDef, WorkflowTask


@dataclass(frozen=True)
class Slot:
    task: WorkflowTask
    siblings: tuple[WorkflowTask, ...]
    position: int
    parent: WorkflowTask | None  # the SWITCH/DECISION/FORK_JOIN/DO_WHILE holding this list


class DefIndex:
    def __init__(self, definition: WorkflowDef) -> None:
        self.definition = definition
        self.slots: dict[str, Slot] = {}
        self._index(tuple(definition.tasks), None)

    def _index(self, tasks: tuple[WorkflowTask, ...], parent: WorkflowTask | None) -> None:
        for i, task in enumerate(tasks):
            if task.taskReferenceName:
                self.slots[task.taskReferenceName] = Slot(task, tasks, i, parent)
            for case in task.decisionCases.values():
                self._index(tuple(case), task)
            self._index(tuple(task.defaultCase), task)
            for branch in task.forkTasks:
                self._index(tuple(branch), task)
            self._index(tuple(task.loopOver), task)

    def task(self, ref: str) -> WorkflowTask | None:
        slot = self.slots.get(ref)
        return slot.task if slot else None

    def next_after(self, ref: str) -> tuple[WorkflowTask | None, WorkflowTask | None]:
        """The task that follows `ref` once it is done, and the container whose end was
        reached on the way (a FORK_JOIN branch or a DO_WHILE body), if any.

        After the last task of a SWITCH case the flow continues after the SWITCH; the end of
        a fork branch or a loop body stops here and hands over to the JOIN or the loop.
        """
        slot = self.slots.get(ref)
        while slot is not None:
            if slot.position + 1 < len(slot.siblings):
                return slot.siblings[slot.position + 1], None
            parent = slot.parent
            if parent is None:
                return None, None
            if parent.type in ("FORK_JOIN", "DO_WHILE"):
                return None, parent
            slot = self.slots.get(parent.taskReferenceName or "")
        return None, None


@lru_cache(maxsize=512)
def _cached(definition_json: str) -> DefIndex:
    return DefIndex(WorkflowDef.model_validate_json(definition_json))


def index_for(definition_json: str) -> DefIndex:
    """The index of a stored definition, parsed once per distinct definition text."""
    return _cached(definition_json)
