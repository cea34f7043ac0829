"""Research export: tidy files, a data dictionary, pseudonyms that still join."""

import csv
import json

from service.test_reports import T0, seeded  # noqa: F401 - the seeded database fixture

from orchestrator.service.export import ENTITIES

KEY = "a-research-pseudonym-key-123"


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_writes_one_file_per_entity_and_a_dictionary(seeded, make_cli, base_env, tmp_path):  # noqa: F811
    cli = make_cli(base_env)
    out = tmp_path / "export"
    result = cli("export", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert rows == {"hint_requests": 7, "reflections": 0, "ratings": 4, "poll_statistics": 7,
                    "escalations": 3, "executions": 3}
    hints = read_csv(out / "hint_requests.csv")
    assert {h["student_id"] for h in hints} == {"ann", "bob", "cid", "old"}
    dictionary = (out / "data_dictionary.md").read_text()
    for entity in ENTITIES:
        assert f"## {entity.name}.csv" in dictionary
        for column in entity.columns:
            assert f"`{column.name}`" in dictionary
    since = cli("export", "--out", str(tmp_path / "recent"), "--since", T0.date().isoformat(), "--format", "jsonl",
                "--json")
    assert json.loads(since.stdout)["rows"]["hint_requests"] == 6
    first = json.loads((tmp_path / "recent" / "hint_requests.jsonl").read_text().splitlines()[0])
    assert first["created_at"].endswith("+00:00")


def test_pseudonymized_export_hides_identities_but_still_joins(seeded, make_cli, base_env, tmp_path):  # noqa: F811
    cli = make_cli({**base_env, "ORCHESTRATOR_PSEUDONYM_KEY": KEY})
    out = tmp_path / "pseudo"
    assert cli("export", "--out", str(out), "--pseudonymize").exit_code == 0
    every_file = "".join(p.read_text() for p in out.glob("*.csv"))
    for identity in ("ann", "bob", "cid", "old"):
        assert f",{identity}," not in every_file and f"\n{identity}," not in every_file
    hints = {h["id"]: h for h in read_csv(out / "hint_requests.csv")}
    escalations = read_csv(out / "escalations.csv")
    assert escalations and all(hints[e["hint_request_id"]]["student_id"] == e["student_id"] for e in escalations)
    assert all(h["student_id"].startswith("s_") for h in hints.values())
    assert len({h["student_id"] for h in hints.values()}) == 4
    # The same key gives the same pseudonyms in a second export.
    again = tmp_path / "again"
    cli("export", "--out", str(again), "--pseudonymize")
    assert {h["student_id"] for h in read_csv(again / "hint_requests.csv")} == {h["student_id"] for h in hints.values()}


def test_pseudonymizing_needs_a_key(seeded, make_cli, base_env, tmp_path):  # noqa: F811
    result = make_cli(base_env)("export", "--out", str(tmp_path / "x"), "--pseudonymize")
    assert result.exit_code == 2 and "ORCHESTRATOR_PSEUDONYM_KEY" in result.output
