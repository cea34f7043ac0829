"""Escalations waiting past the threshold remind the instructors, once per threshold."""

import time
from datetime import timedelta

import pytest

from api.test_feedback import escalate
from conftest import INSTRUCTORS_YAML, wait_until
from orchestrator.service.feedback import send_reminders
from orchestrator.store.models import InstructorFeedbackRequest

YAML = INSTRUCTORS_YAML + """reminder_after: 60
reminder_email:
  subject: "{n_overdue_requests} overdue, oldest {oldest_waiting_minutes} min"
  body: "{n_unprocessed_requests} waiting."
"""


@pytest.fixture
def stack_env(tmp_path, mail):
    path = tmp_path / "instructors.yaml"
    path.write_text(YAML)
    return {"ORCHESTRATOR_INSTRUCTOR_CONFIG": str(path), **mail.env}


def age(runtime, feedback_id, minutes):
    with runtime.db.scope(immediate=True) as session:
        row = session.get(InstructorFeedbackRequest, feedback_id)
        row.created_at -= timedelta(minutes=minutes)
        session.add(row)


def reminders(mail):
    return [m for m in mail.messages if "overdue" in m["subject"]]


def test_reminders_once_per_threshold_and_never_for_answered_requests(stack, mail):
    rt = stack.runtime
    _, waiting = escalate(stack.client, student="a")
    _, answered = escalate(stack.client, student="b")
    with rt.db.scope(immediate=True) as session:
        row = session.get(InstructorFeedbackRequest, answered)
        row.state, row.instructor_feedback, row.instructor_id = "answered", "done", "1"
        session.add(row)
    assert send_reminders(rt.db, rt.instructor_config, rt.notifier) == 0  # not old enough yet

    age(rt, waiting, 65)
    age(rt, answered, 65)
    assert send_reminders(rt.db, rt.instructor_config, rt.notifier) == 1
    assert send_reminders(rt.db, rt.instructor_config, rt.notifier) == 0  # once per threshold
    wait_until(lambda: len(reminders(mail)) == 2, timeout=15, message="a reminder to each instructor")
    assert {m["to"][0] for m in reminders(mail)} == {"ada@course.example", "grace@course.example"}
    assert reminders(mail)[0]["subject"] == "1 overdue, oldest 65 min"
    assert reminders(mail)[0]["body"].strip() == "1 waiting."

    age(rt, waiting, 60)  # now past two thresholds
    assert send_reminders(rt.db, rt.instructor_config, rt.notifier) == 1
    wait_until(lambda: len(reminders(mail)) == 4, timeout=15, message="the second reminder")
    time.sleep(0.2)
    assert len(reminders(mail)) == 4
