import pytest

from reelfarm.states import (
    JOB_MACHINE,
    STYLE_EXTRACTION_MACHINE,
    TASK_MACHINE,
    InvalidTransition,
    JobStatus,
    StyleExtractionState,
    TaskState,
    decide,
    transition,
)


class Thing:
    def __init__(self, status):
        self.status = status


def test_allowed_transition_changes_state():
    job = Thing("queued")
    assert transition(JOB_MACHINE, job, JobStatus.processing) is True
    assert job.status == "processing"


def test_same_outcome_twice_changes_nothing():
    job = Thing("processing")
    assert transition(JOB_MACHINE, job, JobStatus.completed) is True
    assert transition(JOB_MACHINE, job, JobStatus.completed) is False
    assert job.status == "completed"


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
def test_terminal_states_are_final(terminal):
    job = Thing(terminal)
    decision = decide(JOB_MACHINE, terminal, "processing")
    assert (decision.accepted, decision.changed, decision.rule) == (False, False, "terminal")
    assert transition(JOB_MACHINE, job, JobStatus.processing) is False
    assert job.status == terminal


def test_invalid_edge_raises():
    with pytest.raises(InvalidTransition):
        decide(JOB_MACHINE, "queued", "completed")
    with pytest.raises(InvalidTransition):
        decide(TASK_MACHINE, "pending", "completed")


def test_every_state_is_declared_and_terminal_states_have_no_edges():
    for machine, enum in ((JOB_MACHINE, JobStatus), (TASK_MACHINE, TaskState),
                          (STYLE_EXTRACTION_MACHINE, StyleExtractionState)):
        assert set(machine.edges) == {s.value for s in enum}
        for state in machine.terminal:
            assert machine.edges[state] == frozenset()
        for targets in machine.edges.values():
            assert targets <= set(machine.edges)


def test_lease_lost_goes_back_to_pending():
    task = Thing("running")
    assert transition(TASK_MACHINE, task, TaskState.pending) is True
