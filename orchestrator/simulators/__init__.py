"""Stand-ins for the two upstream services the orchestrator calls.

The orchestrator talks to a **Problem Handler** (problem catalog and program
execution) and an **AI Hint backend** (hint generation, which answers later by
calling the orchestrator's ``POST /ai_hint/save/``). This package provides a
simulator of each, speaking the same HTTP protocol on the same paths as the
old deployment, served by real HTTP servers so that the orchestrator's own
clients, timeouts and retries are exercised exactly as in production:

- :mod:`.problem_handler` — ``ProblemHandler``: a small catalog of sample
  problems and a judge that *really runs* submitted programs;
- :mod:`.hint_backend` — ``HintBackend``: accepts hint requests and
  reflections, checks that they arrive in order and only once, and calls the
  orchestrator back with a deterministic "generated" hint (retrying on failure);
- :mod:`.faults` — latency, 500s, non-JSON answers and dropped connections,
  changeable at run time through ``PUT /_sim/faults``;
- :mod:`.server` — ``SimulatorServer``, ``start_simulators`` (tests) and
  ``run_simulators`` (the ``orchestrator simulate`` command).

Real execution versus stand-in: program execution is real — each submitted
program runs in a separate Python interpreter (``sys.executable``) against the
problem's hidden test cases, with a per-case timeout, so correct, wrong,
crashing, non-compiling and never-ending programs behave as they would on the
real service. There is no sandbox: the program runs with the simulator's
rights, so run the simulators only on your own machine, never exposed to
students. Hint generation, on the other hand, is a stand-in: no model is
called; the hint text is derived from the hint type, problem and program, and
the only thing simulated faithfully is the protocol (timing, callback body,
retries, failures).

The simulators share no code with the rest of the ``orchestrator`` package —
they import none of its modules — so that a mistake in the orchestrator's
understanding of the protocol cannot be mirrored here and go unnoticed.
See ``docs/simulators.md`` for the endpoints, options and control API.
"""
