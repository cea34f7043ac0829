from falcon import testing

from orchestrator.api.app import create_app
from orchestrator.runtime import build_runtime
from orchestrator.store import schema


def test_healthz_and_readyz_on_a_migrated_database(client):
    assert client.simulate_get("/healthz").json == {"status": "ok"}
    ready = client.simulate_get("/readyz")
    assert ready.status_code == 200
    assert ready.json["status"] == "ready"
    assert ready.json["migrations"]["current"] == schema.head_revision()


def test_readyz_is_503_until_the_database_is_migrated(make_settings, empty_database_url):
    runtime = build_runtime(make_settings(DATABASE_URL=empty_database_url))
    c = testing.TestClient(create_app(runtime.settings, runtime))
    result = c.simulate_get("/readyz")
    assert result.status_code == 503
    assert "orchestrator migrate" in result.json["error"]
    assert result.json["info"]["migrations"]["current"] is None
    assert c.simulate_get("/healthz").status_code == 200
    schema.upgrade(runtime.db.engine)
    assert c.simulate_get("/readyz").status_code == 200
    runtime.close()


def test_readyz_is_503_when_the_database_is_unreachable(make_settings):
    runtime = build_runtime(make_settings(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    result = testing.TestClient(create_app(runtime.settings, runtime)).simulate_get("/readyz")
    assert result.status_code == 503
    assert result.json["info"] == {"database": "unreachable"}
    runtime.close()
