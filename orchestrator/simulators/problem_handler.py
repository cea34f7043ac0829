"""Problem Handler simulator: a problem catalog and a real program runner.

Paths are those of the old deployment (``http://backend-problem-handler:8002``):

``GET /query/programming_problems/``
    JSON array of ``{problem_id, name}``.
``GET /query/programming_problems/?problem_id=ID``
    ``{problem_id, name, task_description, template_code}``; 404 for an unknown
    id. Other query parameters (``include_description=true``) are ignored. The
    sample problem ``max_list`` answers ``task_description_error`` instead of
    ``task_description``, as the real service does when a description file is
    missing.
``POST /execution/execute_program/``
    ``{problem_id, student_program}`` → ``{"execution_id": int}``; 400 for a
    missing or ill-typed field, 404 for an unknown problem. Extra fields are
    accepted, ignored, and counted in ``/_sim/stats`` (``unexpected_fields``).
``GET /execution/get_execution_result/?execution_id=N``
    ``{"job_finished": false, "execution_id": N}`` until the run is done and
    ``execution_delay`` has passed since the POST; then one of

    - ``{"job_finished": true, "execution_id": N, "correctness": bool,
      "buggy_output": str | null, "elapsed_time": float}``;
    - ``{"job_finished": true, "execution_id": N, "error": str}`` when the
      program does not compile (syntax, indentation or null-byte errors);
    - HTTP 500 ``{"error": "execution took too long"}`` when a test case
      exceeded ``case_timeout``.

    Unknown id: 404; missing or non-integer id: 400.

How programs are judged: the program is checked for syntax in a separate
interpreter, then run once per test case as ``python -I -X utf8 <file>`` in a
fresh temporary directory with the case's input on stdin. Output is compared
line by line, ignoring trailing whitespace and trailing blank lines. A program
that raises at run time (a non-zero exit) fails that case like a wrong answer,
and ``buggy_output`` shows the last line of its traceback — this is a bug in the
student's program, not an execution error. Judging stops at the first failing
case. There is **no sandbox**: the program runs with the simulator's own
rights, so run the simulator only on your own machine.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import falcon

from .common import Simulator, bad_request, json_object, not_found, option_number, require

PROBLEMS_PATH = "/query/programming_problems/"
EXECUTE_PATH = "/execution/execute_program/"
RESULT_PATH = "/execution/get_execution_result/"

TIMEOUT_MESSAGE = "execution took too long"

RECEIVED_KEPT = 1000
"""How many received executions and catalog queries ``/_sim/stats`` keeps (newest)."""


@dataclass(frozen=True)
class TestCase:
    """One hidden test: the text given on stdin and the expected stdout."""

    __test__ = False  # not a pytest test class, despite the name

    stdin: str
    expected: str


@dataclass(frozen=True)
class Problem:
    """A catalog entry. ``task_description=None`` simulates a missing description file."""

    problem_id: str
    name: str
    task_description: str | None
    template_code: str
    cases: tuple[TestCase, ...]

    def summary(self) -> dict[str, Any]:
        return {"problem_id": self.problem_id, "name": self.name}

    def detail(self) -> dict[str, Any]:
        body = self.summary()
        if self.task_description is None:
            body["task_description_error"] = (
                f"task description file not found for problem {self.problem_id}"
            )
        else:
            body["task_description"] = self.task_description
        body["template_code"] = self.template_code
        return body


SAMPLE_PROBLEMS: tuple[Problem, ...] = (
    Problem(
        problem_id="sum_two",
        name="Sum of Two Numbers",
        task_description=(
            "# Sum of Two Numbers\n\n"
            "Read one line with two integers `a` and `b`, separated by a space, "
            "and print their sum.\n\n"
            "**Example**\n\n```\ninput:  2 3\noutput: 5\n```\n"
        ),
        template_code=(
            "def solve(a, b):\n"
            "    # TODO: return the sum of a and b\n"
            "    return 0\n\n\n"
            "a, b = map(int, input().split())\n"
            "print(solve(a, b))\n"
        ),
        cases=(
            TestCase("2 3\n", "5\n"),
            TestCase("-5 10\n", "5\n"),
            TestCase("0 0\n", "0\n"),
            TestCase("123456789 987654321\n", "1111111110\n"),
        ),
    ),
    Problem(
        problem_id="reverse_string",
        name="Reverse a String",
        task_description=(
            "# Reverse a String\n\n"
            "Read one line of text and print it reversed, character by character.\n\n"
            "**Example**\n\n```\ninput:  hello\noutput: olleh\n```\n"
        ),
        template_code=(
            "def solve(text):\n"
            "    # TODO: return the text reversed\n"
            "    return text\n\n\n"
            "text = input()\n"
            "print(solve(text))\n"
        ),
        cases=(
            TestCase("hello\n", "olleh\n"),
            TestCase("abc def\n", "fed cba\n"),
            TestCase("a\n", "a\n"),
            TestCase("Python 3\n", "3 nohtyP\n"),
        ),
    ),
    Problem(
        problem_id="fizzbuzz",
        name="FizzBuzz",
        task_description=(
            "# FizzBuzz\n\n"
            "Read an integer `n` and print the numbers from 1 to `n`, one per line, "
            "but print `Fizz` for multiples of 3, `Buzz` for multiples of 5 and "
            "`FizzBuzz` for multiples of both.\n\n"
            "**Example**\n\n```\ninput:  5\noutput:\n1\n2\nFizz\n4\nBuzz\n```\n"
        ),
        template_code=(
            "def solve(n):\n"
            "    # TODO: replace multiples of 3 and 5 by Fizz, Buzz or FizzBuzz\n"
            "    return [str(i) for i in range(1, n + 1)]\n\n\n"
            "n = int(input())\n"
            "for line in solve(n):\n"
            "    print(line)\n"
        ),
        cases=(
            TestCase("1\n", "1\n"),
            TestCase("5\n", "1\n2\nFizz\n4\nBuzz\n"),
            TestCase(
                "15\n",
                "1\n2\nFizz\n4\nBuzz\nFizz\n7\n8\nFizz\nBuzz\n11\nFizz\n13\n14\nFizzBuzz\n",
            ),
        ),
    ),
    Problem(
        problem_id="max_list",
        name="Largest Number",
        # NOTE: no description on purpose: this problem answers
        # task_description_error, like the real service with a missing file.
        task_description=None,
        template_code=(
            "def solve(numbers):\n"
            "    # TODO: return the largest number\n"
            "    return numbers[0]\n\n\n"
            "numbers = [int(x) for x in input().split()]\n"
            "print(solve(numbers))\n"
        ),
        cases=(
            TestCase("3 1 2\n", "3\n"),
            TestCase("1 5 2\n", "5\n"),
            TestCase("-4 -2 -9\n", "-2\n"),
            TestCase("7\n", "7\n"),
        ),
    ),
)

SOLUTIONS: dict[str, str] = {
    "sum_two": "a, b = map(int, input().split())\nprint(a + b)\n",
    "reverse_string": "print(input()[::-1])\n",
    "fizzbuzz": (
        "n = int(input())\n"
        "for i in range(1, n + 1):\n"
        "    if i % 15 == 0:\n"
        "        print('FizzBuzz')\n"
        "    elif i % 3 == 0:\n"
        "        print('Fizz')\n"
        "    elif i % 5 == 0:\n"
        "        print('Buzz')\n"
        "    else:\n"
        "        print(i)\n"
    ),
    "max_list": "print(max(int(x) for x in input().split()))\n",
}
"""A known-correct program for each sample problem, for tests and demos."""


# --------------------------------------------------------------------------
# Running programs
# --------------------------------------------------------------------------

def _syntax_error(program: str) -> str | None:
    """``"SyntaxError: ..."`` when the program does not compile, else None."""
    try:
        compile(program, "student_program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass(frozen=True)
class Outcome:
    """How an execution ended: ``kind`` is "finished", "error" or "timeout"."""

    kind: str
    correctness: bool = False
    buggy_output: str | None = None
    elapsed_time: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class _Run:
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str


def _child_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8"}
    if "SYSTEMROOT" in os.environ:  # Windows needs it to start Python at all
        env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    return env


class ProcessGroups:
    """The student processes running now, so that stopping the simulator can kill them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)
            closed = self._closed
        if closed:  # started while the simulator was stopping
            _kill_group(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        """Kill every running program and any program started from now on."""
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            if proc.returncode is None:
                _kill_group(proc)


def _run_once(
    argv: list[str], stdin: str, timeout: float, cwd: str, groups: ProcessGroups | None = None
) -> _Run:
    """Run one process with a timeout, killing its whole process group if needed."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=_child_env(),
        start_new_session=True,
    )
    if groups is not None:
        groups.add(proc)
    try:
        out, err = proc.communicate(stdin.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return _Run(None, "", "")
    finally:
        if groups is not None:
            groups.discard(proc)
    return _Run(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # NOTE: the student's program may have started children that keep the
    # pipes open; killing only the direct child would leave communicate() hanging.
    if hasattr(os, "killpg"):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            return
        except PermissionError:
            pass
    proc.kill()


def _normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_failure(index: int, case: TestCase, got: str) -> str:
    return (
        f"Test case {index} failed.\n"
        f"Input: {_shorten(case.stdin)!r}\n"
        f"Expected output: {_shorten(case.expected)!r}\n"
        f"{got}"
    )


def judge(
    program: str, cases: Iterable[TestCase], *, case_timeout: float, groups: ProcessGroups | None = None
) -> Outcome:
    """Check ``program`` for syntax, then run it against ``cases`` in order.

    Runs untrusted code in subprocesses with no sandbox; see the module docstring.
    ``groups``, if given, tracks the running processes so they can be killed early.
    """
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="sim-execution-") as workdir:
        path = Path(workdir, "student_program.py")
        path.write_text(program, encoding="utf-8")
        # Compiling runs none of the program, so it happens here rather than in a
        # process of its own (a spawn per run was most of the simulator's CPU time).
        error = _syntax_error(program)
        if error is not None:
            return Outcome("error", error=error)

        elapsed = 0.0
        for index, case in enumerate(cases, start=1):
            started = time.perf_counter()
            # -S: the sample problems need only the standard library, and skipping
            # site-packages halves the interpreter's start-up.
            run = _run_once([python, "-I", "-S", "-X", "utf8", str(path)], case.stdin, case_timeout, workdir,
                            groups)
            elapsed += time.perf_counter() - started
            if run.returncode is None:
                return Outcome("timeout")
            if run.returncode != 0:
                crash = _last_line(run.stderr) or f"exit status {run.returncode}"
                got = f"Your program crashed: {_shorten(crash)}"
            elif _normalise(run.stdout) != _normalise(case.expected):
                got = f"Your output: {_shorten(run.stdout)!r}"
            else:
                continue
            return Outcome(
                "finished",
                correctness=False,
                buggy_output=_describe_failure(index, case, got),
                elapsed_time=round(elapsed, 4),
            )
        return Outcome("finished", correctness=True, elapsed_time=round(elapsed, 4))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


# --------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------


@dataclass
class _Execution:
    execution_id: int
    problem_id: str
    visible_at: float
    outcome: Outcome | None = None


class ProblemHandler(Simulator):
    """The Problem Handler simulator as a WSGI app (serve it with ``server.py``).

    Args:
        problems: the catalog (default :data:`SAMPLE_PROBLEMS`).
        execution_delay: seconds after the POST before a result may be seen.
        case_timeout: seconds each test case may run.
        max_parallel: executions judged at the same time; the rest wait.
        faults: initial fault settings (a ``Faults`` or a mapping of its fields).
    """

    name = "Problem Handler"

    def __init__(
        self,
        *,
        problems: Iterable[Problem] | None = None,
        execution_delay: float = 0.5,
        case_timeout: float = 2.0,
        max_parallel: int = 4,
        faults: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._problems = {p.problem_id: p for p in (SAMPLE_PROBLEMS if problems is None else problems)}
        self._lock = threading.Lock()
        self._clock = clock
        self._options = {"execution_delay": 0.0, "case_timeout": 2.0}
        self._ids = itertools.count(1)
        self._executions: dict[int, _Execution] = {}
        self._received: deque[dict[str, Any]] = deque(maxlen=RECEIVED_KEPT)
        self._queries: deque[dict[str, Any]] = deque(maxlen=RECEIVED_KEPT)
        self._unexpected: dict[str, int] = {}
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self._slots = threading.BoundedSemaphore(max_parallel)
        self._closed = threading.Event()
        self._groups = ProcessGroups()
        self.configure({"execution_delay": execution_delay, "case_timeout": case_timeout})
        super().__init__(faults=faults)

    # -- options and stats ---------------------------------------------------

    def config(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._options)

    def configure(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - set(self._options))
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(unknown)}")
        clean = {}
        if "execution_delay" in fields:
            clean["execution_delay"] = option_number("execution_delay", fields["execution_delay"], low=0, high=3600)
        if "case_timeout" in fields:
            clean["case_timeout"] = option_number("case_timeout", fields["case_timeout"], low=0.01, high=3600)
        with self._lock:
            self._options.update(clean)
            return dict(self._options)

    def received_stats(self) -> dict[str, Any]:
        with self._lock:
            finished = sum(1 for e in self._executions.values() if e.outcome is not None)
            return {
                "executions": {
                    "submitted": len(self._executions),
                    "finished": finished,
                    "running": len(self._executions) - finished,
                },
                "received": {
                    "executions": [dict(item) for item in self._received],
                    "problem_queries": [dict(item) for item in self._queries],
                    "unexpected_fields": dict(self._unexpected),
                },
            }

    def close(self) -> None:
        """Stop judging: kill running programs; queued executions end as errors."""
        self._closed.set()
        self._groups.kill_all()

    # -- routes ----------------------------------------------------------------

    def add_routes(self, app: falcon.App) -> None:
        app.add_route(PROBLEMS_PATH, _ProblemsResource(self))
        app.add_route(EXECUTE_PATH, _ExecuteResource(self))
        app.add_route(RESULT_PATH, _ResultResource(self))

    def problem(self, problem_id: str) -> Problem:
        try:
            return self._problems[problem_id]
        except KeyError:
            raise not_found(f"unknown problem: {problem_id}") from None

    def list_problems(self) -> list[dict[str, Any]]:
        return [p.summary() for p in self._problems.values()]

    def record_query(self, params: Mapping[str, Any]) -> None:
        with self._lock:
            self._queries.append(dict(params))

    def submit(self, body: Mapping[str, Any]) -> int:
        """Validate an execute request, start judging it, return its execution id."""
        problem_id = require(body, "problem_id", str)
        program = require(body, "student_program", str)
        problem = self.problem(problem_id)
        extra = sorted(set(body) - {"problem_id", "student_program"})
        with self._lock:
            execution_id = next(self._ids)
            delay = self._options["execution_delay"]
            timeout = self._options["case_timeout"]
            execution = _Execution(execution_id, problem_id, visible_at=self._clock() + delay)
            self._executions[execution_id] = execution
            self._received.append(
                {"execution_id": execution_id, "problem_id": problem_id, "student_program": program}
            )
            for name in extra:
                self._unexpected[name] = self._unexpected.get(name, 0) + 1
        worker = threading.Thread(
            target=self._judge,
            args=(execution, program, problem.cases, timeout),
            name=f"sim-execution-{execution_id}",
            daemon=True,
        )
        worker.start()
        return execution_id

    def _judge(self, execution: _Execution, program: str, cases: tuple[TestCase, ...], timeout: float) -> None:
        with self._slots:
            if self._closed.is_set():
                outcome = Outcome("error", error="simulator stopped")
            else:
                try:
                    outcome = judge(program, cases, case_timeout=timeout, groups=self._groups)
                except Exception as exc:  # noqa: BLE001 - report, never kill the thread noisily
                    outcome = Outcome("error", error=f"simulator could not run the program: {exc}")
        if self._closed.is_set():
            outcome = Outcome("error", error="simulator stopped")
        with self._lock:
            execution.outcome = outcome

    def result(self, execution_id: int) -> tuple[str, dict[str, Any]]:
        """Answer a poll: ``(status, body)`` for the execution with that id."""
        with self._lock:
            execution = self._executions.get(execution_id)
            if execution is None:
                raise not_found(f"unknown execution: {execution_id}")
            outcome = execution.outcome
            ready = outcome is not None and self._clock() >= execution.visible_at
        if not ready or outcome is None:
            return falcon.HTTP_200, {"job_finished": False, "execution_id": execution_id}
        if outcome.kind == "timeout":
            return falcon.HTTP_500, {"error": TIMEOUT_MESSAGE}
        if outcome.kind == "error":
            return falcon.HTTP_200, {"job_finished": True, "execution_id": execution_id, "error": outcome.error}
        return falcon.HTTP_200, {
            "job_finished": True,
            "execution_id": execution_id,
            "correctness": outcome.correctness,
            "buggy_output": outcome.buggy_output,
            "elapsed_time": outcome.elapsed_time,
        }


class _ProblemsResource:
    def __init__(self, handler: ProblemHandler) -> None:
        self._handler = handler

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._handler.record_query(req.params)
        problem_id = req.get_param("problem_id")
        if problem_id is None:
            resp.media = self._handler.list_problems()
        else:
            resp.media = self._handler.problem(problem_id).detail()


class _ExecuteResource:
    def __init__(self, handler: ProblemHandler) -> None:
        self._handler = handler

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"execution_id": self._handler.submit(json_object(req))}


class _ResultResource:
    def __init__(self, handler: ProblemHandler) -> None:
        self._handler = handler

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = req.get_param("execution_id")
        if raw is None:
            raise bad_request("missing query parameter: execution_id")
        try:
            execution_id = int(raw.strip(), 10)
        except ValueError:
            raise bad_request("execution_id must be an integer") from None
        resp.status, resp.media = self._handler.result(execution_id)


__all__ = [
    "EXECUTE_PATH",
    "PROBLEMS_PATH",
    "RESULT_PATH",
    "SAMPLE_PROBLEMS",
    "SOLUTIONS",
    "Outcome",
    "Problem",
    "ProblemHandler",
    "TestCase",
    "judge",
]
