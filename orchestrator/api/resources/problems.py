import falcon

from orchestrator.api import params
from orchestrator.api.media import json_object
from orchestrator.runtime import Runtime
from orchestrator.service import executions, problems


class ProgrammingProblems:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = problems.get_catalog(
            client=self._rt.problem_handler, cache=self._rt.catalog, query_string=req.query_string
        )


class ExecuteProgram:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        problem_id = params.identifier(body, "problem_id")
        student_program = params.string(body, "student_program", allow_empty=True)
        student_id = params.identifier(body, "student_id", optional=True)
        execution_id = executions.start_execution(
            db=self._rt.db, client=self._rt.problem_handler,
            student_id=student_id, problem_id=problem_id, student_program=student_program,
        )
        resp.media = {"execution_id": execution_id}


class ExecutionResult:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        execution_id = params.query_id(req, "execution_id")
        resp.media = executions.execution_result(
            db=self._rt.db, client=self._rt.problem_handler, execution_id=execution_id
        )


def register(app: falcon.App, runtime: Runtime) -> None:
    app.add_route("/problems/programming_problems/", ProgrammingProblems(runtime))
    app.add_route("/problems/execute_program/", ExecuteProgram(runtime))
    app.add_route("/problems/get_execution_result/", ExecutionResult(runtime))
