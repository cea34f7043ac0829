"""Built single-page apps served at /student/ and /instructor/."""

import base64

import pytest
from falcon import testing

from conftest import INSTRUCTORS_YAML, issue_token
from orchestrator.api.app import create_app
from orchestrator.errors import ConfigError
from orchestrator.runtime import build_runtime

INDEX = '<!doctype html><html><script type="module" src="/student/assets/app-3f9a1c.js"></script></html>'


def build_app(directory, name):
    app_dir = directory / name
    (app_dir / "assets").mkdir(parents=True)
    (app_dir / "index.html").write_text(INDEX.replace("/student/", f"/{name}/"))
    (app_dir / "assets" / "app-3f9a1c.js").write_text("console.log('app')")
    return app_dir


@pytest.fixture
def served(make_settings, tmp_path):
    (tmp_path / "instructors.yaml").write_text(INSTRUCTORS_YAML)
    runtime = build_runtime(make_settings(
        ORCHESTRATOR_STUDENT_APP_DIR=str(build_app(tmp_path, "student")),
        ORCHESTRATOR_INSTRUCTOR_APP_DIR=str(build_app(tmp_path, "instructor")),
        ORCHESTRATOR_INSTRUCTOR_CONFIG=str(tmp_path / "instructors.yaml"),
    ))
    yield testing.TestClient(create_app(runtime.settings, runtime)), runtime
    runtime.close()


def test_the_student_app_loads_its_assets_and_deep_links_fall_back(served):
    client, _ = served
    index = client.simulate_get("/student/")
    assert index.status_code == 200 and "app-3f9a1c.js" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in index.headers["content-security-policy"]
    asset = client.simulate_get("/student/assets/app-3f9a1c.js")
    assert asset.status_code == 200 and asset.text == "console.log('app')"
    assert "immutable" in asset.headers["cache-control"]
    deep = client.simulate_get("/student/problems/sum_two/attempt")
    assert deep.status_code == 200 and deep.text == index.text
    escape = client.simulate_get("/student/../../../etc/passwd")
    assert "root:" not in escape.text
    # The API keeps its own headers.
    api = client.simulate_get("/healthz")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_instructor_app_needs_the_instructor_credential(served):
    client, runtime = served
    refused = client.simulate_get("/instructor/")
    assert refused.status_code == 401
    assert any("Basic" in value for value in refused.headers.get("www-authenticate", "").split(";"))
    token = issue_token(runtime, "1")
    basic = base64.b64encode(f"1:{token}".encode()).decode()
    page = client.simulate_get("/instructor/", headers={"Authorization": f"Basic {basic}"})
    assert page.status_code == 200 and "app-3f9a1c.js" in page.text
    # The same browser credential covers the app's API calls (same origin).
    api = client.simulate_get("/instructor_feedback/queue/", headers={"Authorization": f"Basic {basic}"})
    assert api.status_code == 200


def test_a_directory_without_index_html_is_refused_at_start(make_settings, tmp_path):
    with pytest.raises(ConfigError, match="ORCHESTRATOR_STUDENT_APP_DIR"):
        make_settings(ORCHESTRATOR_STUDENT_APP_DIR=str(tmp_path))
