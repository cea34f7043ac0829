from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_starts_with_the_run_and_test_commands_that_ci_uses():
    first, second = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()[:2]]
    assert first.endswith("orchestrator serve --demo")
    assert second.endswith("pytest")
    assert f'TEST_COMMAND="{second}"' in (ROOT / ".ci" / "run").read_text()
