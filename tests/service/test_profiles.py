from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.service.profiles import BUILT_IN_DEFAULT, Limits, load_profiles, parse_profile_file

ROOT = Path(__file__).resolve().parents[2]


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def test_shipped_default_is_plan_1_debug_3_optimize_1_overall_unlimited():
    profiles = load_profiles(ROOT / "quota_profiles")
    assert profiles.default == Limits(overall=None, plan=1, debug=3, optimize=1) == BUILT_IN_DEFAULT
    assert profiles.overrides == ()


def test_shipped_examples_are_valid():
    default, overrides = parse_profile_file(ROOT / "quota_profiles" / "examples" / "per-problem.yaml")
    assert default is None and [o.pattern for o in overrides] == ["exam_*", "recursion_*", "warmup_??"]
    legacy, _ = parse_profile_file(ROOT / "quota_profiles" / "examples" / "legacy.yaml")
    assert legacy == BUILT_IN_DEFAULT


def test_overrides_match_by_glob_inherit_the_default_and_first_match_wins(tmp_path):
    d = tmp_path / "p"
    write(d, "10-default.yaml", "default: {overall: null, plan: 1, debug: 3, optimize: 1}\n")
    write(d, "20-course.yaml", "problems:\n  'exam_*': {overall: 2, plan: 0}\n  'exam_final': {overall: 9}\n")
    profiles = load_profiles(d)
    assert profiles.limits_for("exam_midterm") == Limits(overall=2, plan=0, debug=3, optimize=1)
    assert profiles.limits_for("exam_final").overall == 2  # the first pattern wins
    assert profiles.limits_for("loops") == profiles.default
    assert "20-course.yaml" in profiles.match("exam_x")[1]


def test_legacy_format_with_string_none(tmp_path):
    d = tmp_path / "p"
    write(d, "quota.yaml", 'hint_quota:\n  max_hints_per_problem: "None"\n  max_planning_hints_per_problem: 2\n'
                           '  max_debugging_hints_per_problem: "None"\n  max_optimization_hints_per_problem: 0\n')
    assert load_profiles(d).default == Limits(overall=None, plan=2, debug=None, optimize=0)


def test_missing_directory_means_built_in_default_unless_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_profiles(None).default == BUILT_IN_DEFAULT
    with pytest.raises(ConfigError, match="ORCHESTRATOR_QUOTA_PROFILES"):
        load_profiles(tmp_path / "nope")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("default: {plan: -1}\n", ["bad.yaml", "default.plan", "-1"]),
        ("default: {plan: 'two'}\n", ["default.plan", "'two'"]),
        ("default: {plan: true}\n", ["default.plan", "True"]),
        ("default: {plan: 'None'}\n", ["default.plan", "'None'"]),
        ("default: {hints: 3}\n", ["default.hints", "unknown key"]),
        ("problems:\n  'exam_*': {debug: 1.5}\n", ["problems['exam_*'].debug", "1.5"]),
        ("problems:\n  'exam_*': 3\n", ["problems['exam_*']", "mapping"]),
        ("problems: [1, 2]\n", ["problems"]),
        ("hint_quota:\n  max_planning_hints_per_problem: 'lots'\n", ["hint_quota.max_planning_hints_per_problem", "'lots'"]),
        ("hint_quota:\n  max_plans: 1\n", ["hint_quota.max_plans"]),
        ("quota: {}\n", ["unknown key 'quota'"]),
        ("default: [\n", ["not valid YAML"]),
        ("- 1\n- 2\n", ["must be a mapping"]),
    ],
)
def test_invalid_files_name_file_key_and_value(tmp_path, text, fragments):
    d = tmp_path / "p"
    write(d, "bad.yaml", text)
    with pytest.raises(ConfigError) as excinfo:
        load_profiles(d)
    for fragment in fragments:
        assert fragment in str(excinfo.value)
    assert "bad.yaml" in str(excinfo.value)


def test_two_defaults_are_refused(tmp_path):
    d = tmp_path / "p"
    write(d, "a.yaml", "default: {plan: 1}\n")
    write(d, "b.yaml", "default: {plan: 2}\n")
    with pytest.raises(ConfigError, match="b.yaml: default: already given in .*a.yaml"):
        load_profiles(d)


def test_an_invalid_profile_stops_serve(tmp_path, base_env):
    import os
    import subprocess
    import sys

    d = tmp_path / "p"
    write(d, "default.yaml", "default: {debug: many}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(base_env, ORCHESTRATOR_QUOTA_PROFILES=str(d))
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "serve", "--port", "1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "default.yaml: default.debug" in proc.stderr and "'many'" in proc.stderr
