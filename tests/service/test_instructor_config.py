import pytest

from conftest import INSTRUCTORS_YAML
from orchestrator.errors import ConfigError
from orchestrator.service.instructor_config import DEFAULT_STUDENT_TEMPLATE, load_instructor_config

OLD_SERVICE_FILE = """\
instructors:
  - id: 1
    name: "Ada"
    email: "ada@uni.example"
  - id: 2
    name: "Grace"
    email: "grace@uni.example"
feedback_timeout: 20
instructor_notification_email:
  subject: "New feedback requests"
  body: |
    There are {n_unprocessed_requests} unprocessed and {n_inprocessing_requests} in-process requests.
student_notification_email:
  subject: "Feedback ready"
  body: |
    Your feedback for {problem_id} is ready.
"""


def load(tmp_path, text):
    path = tmp_path / "instructors.yaml"
    path.write_text(text)
    return load_instructor_config(path)


def test_the_old_services_file_is_read_as_it_is(tmp_path):
    config = load(tmp_path, OLD_SERVICE_FILE)
    assert [(i.id, i.name, i.email) for i in config.instructors] == [
        ("1", "Ada", "ada@uni.example"), ("2", "Grace", "grace@uni.example")]
    assert config.timeout_minutes == 20 and config.timeout_seconds == 1200
    assert config.instructor_email.render(n_unprocessed_requests=3, n_inprocessing_requests=1) == (
        "New feedback requests", "There are 3 unprocessed and 1 in-process requests.\n")
    assert config.student_email.render(problem_id="loops")[1] == "Your feedback for loops is ready.\n"
    assert config.get(1) is config.get("1") is not None and config.get("3") is None


def test_no_file_means_no_instructors_and_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_instructor_config(None)
    assert config.instructors == () and config.timeout_minutes == 30
    assert config.student_email == DEFAULT_STUDENT_TEMPLATE
    (tmp_path / "instructors.yaml").write_text(INSTRUCTORS_YAML)
    assert len(load_instructor_config(None).instructors) == 2
    with pytest.raises(ConfigError, match="ORCHESTRATOR_INSTRUCTOR_CONFIG"):
        load_instructor_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "replace, fragments",
    [
        (("feedback_timeout: 30", "feedback_timeout: 0"), ["feedback_timeout", "0"]),
        (("feedback_timeout: 30", "feedback_timeout: '30'"), ["feedback_timeout", "'30'"]),
        (("feedback_timeout: 30", "feedback_timeout: 1.5"), ["feedback_timeout"]),
        (("{n_unprocessed_requests} escalations", "{n_waiting} escalations"),
         ["instructor_notification_email.subject", "{n_waiting}"]),
        (("on {problem_id}.", "on {problem}."), ["student_notification_email.body", "{problem}"]),
        (("on {problem_id}.", "on {0}."), ["student_notification_email.body", "{0}"]),
        (("on {problem_id}.", "on {problem_id."), ["student_notification_email.body", "not a valid template"]),
        (("on {problem_id}.", "on {problem_id:d}."), ["student_notification_email.body", "not a valid template"]),
        (("email: ada@course.example", "email: ada"), ["instructors[0].email", "'ada'"]),
        (("{id: 2,", "{id: 1,"), ["instructors[1].id", "appears twice"]),
        (("name: Grace Hopper", "name: ''"), ["instructors[1].name"]),
        (("{id: 2,", "{id: true,"), ["instructors[1].id"]),
        (("feedback_timeout: 30", "feedback_timeout: 30\nextra: 1"), ["extra", "unknown key"]),
    ],
)
def test_invalid_files_name_file_and_key(tmp_path, replace, fragments):
    old, new = replace
    assert old in INSTRUCTORS_YAML
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, INSTRUCTORS_YAML.replace(old, new))
    message = str(excinfo.value)
    assert "instructors.yaml" in message
    for fragment in fragments:
        assert fragment in message


def test_a_bad_instructor_file_stops_serve(tmp_path, base_env):
    import os
    import subprocess
    import sys

    path = tmp_path / "instructors.yaml"
    path.write_text(INSTRUCTORS_YAML.replace("{problem_id} was", "{student} was"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(base_env, ORCHESTRATOR_INSTRUCTOR_CONFIG=str(path))
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "serve", "--port", "1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "student_notification_email.subject" in proc.stderr and "{student}" in proc.stderr
