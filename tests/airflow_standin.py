"""A stand-in for the few parts of Airflow that examples/05_airflow_taskflow.py imports, so its
task runs in tests without installing Airflow (hundreds of packages).

It behaves as Airflow 2 does where the example depends on it:

* ``@dag`` functions, when called, build a DAG whose tasks are the ``@task`` calls made in
  the body, with their arguments; ``@task`` objects keep the plain function as ``.function``.
* A task runs with its string arguments rendered (``{{ params.NAME }}``, ``{{ run_id }}``;
  the run's conf overrides the DAG's params) and with the context values its signature names
  (``run_id``, ``params``) passed as keywords.
* ``BaseHook.get_connection(ID)`` reads the connection from ``AIRFLOW_CONN_<ID>`` in
  Airflow's JSON form (``{"conn_type": ..., "host": ..., "password": ...}``).

``python -m tests.airflow_standin EXAMPLE RUN_ID [CONF_JSON]`` runs the DAG's one task in
this process, as an Airflow worker would run a try of it, and prints its XCom value as JSON
on the last line of stdout; a failed try exits 1 (2 for ``AirflowFailException``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

_TEMPLATE = re.compile(r"\{\{\s*(params\.(\w+)|run_id)\s*\}\}")


class AirflowException(Exception):
    pass


class AirflowFailException(AirflowException):
    """Fail the task without retrying it."""


class AirflowNotFoundException(AirflowException):
    pass


@dataclass
class Connection:
    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None

    def __repr__(self) -> str:  # Airflow's never shows the password either
        return f"Connection({self.conn_id!r}, host={self.host!r})"


class BaseHook:
    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if raw is None:
            raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")
        fields = json.loads(raw)
        return Connection(conn_id=conn_id, **fields)


@dataclass
class TaskCall:
    task: Task
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def task_id(self) -> str:
        return self.task.function.__name__


@dataclass
class DAG:
    dag_id: str
    params: dict[str, Any]
    options: dict[str, Any]
    calls: list[TaskCall] = field(default_factory=list)

    def task(self, task_id: str) -> TaskCall:
        (call,) = [c for c in self.calls if c.task_id == task_id]
        return call

    def run_task(self, task_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> Any:
        """One try of a task, as a worker runs it."""
        call = self.task(task_id)
        params = {**self.params, **(conf or {})}

        def render(value: Any) -> Any:
            if not isinstance(value, str):
                return value

            def one(m: re.Match[str]) -> str:
                return run_id if m.group(1) == "run_id" else str(params[m.group(2)])

            return _TEMPLATE.sub(one, value)

        context = {"run_id": run_id, "params": params}
        names = inspect.signature(call.task.function).parameters
        kwargs = {k: render(v) for k, v in call.kwargs.items()}
        kwargs.update({k: v for k, v in context.items() if k in names and k not in kwargs})
        return call.task.function(*map(render, call.args), **kwargs)


_building: list[DAG] = []


class Task:
    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        self.function = function
        self.options = options

    def __call__(self, *args: Any, **kwargs: Any) -> TaskCall:
        if not _building:
            raise RuntimeError("a task is called inside a @dag function")
        call = TaskCall(self, args, kwargs)
        _building[-1].calls.append(call)
        return call


def task(**options: Any) -> Callable[[Callable[..., Any]], Task]:
    def wrap(function: Callable[..., Any]) -> Task:
        return Task(function, options)

    return wrap


def dag(
    dag_id: str | None = None, *, params: dict[str, Any] | None = None, **options: Any
) -> Callable[[Callable[[], None]], Callable[[], DAG]]:
    def wrap(body: Callable[[], None]) -> Callable[[], DAG]:
        def build() -> DAG:
            built = DAG(dag_id or body.__name__, dict(params or {}), options)
            _building.append(built)
            try:
                body()
            finally:
                _building.pop()
            return built

        return build

    return wrap


def modules() -> dict[str, ModuleType]:
    """The stand-in's modules by name, to put into ``sys.modules``."""
    made: dict[str, ModuleType] = {}
    contents: dict[str, dict[str, Any]] = {
        "airflow": {},
        "airflow.decorators": {"dag": dag, "task": task},
        "airflow.exceptions": {
            "AirflowException": AirflowException,
            "AirflowFailException": AirflowFailException,
            "AirflowNotFoundException": AirflowNotFoundException,
        },
        "airflow.hooks": {},
        "airflow.hooks.base": {"BaseHook": BaseHook},
    }
    for name, attrs in contents.items():
        module = ModuleType(name)
        module.__dict__.update(attrs)
        made[name] = module
    made["airflow"].decorators = made["airflow.decorators"]  # type: ignore[attr-defined]
    made["airflow"].exceptions = made["airflow.exceptions"]  # type: ignore[attr-defined]
    made["airflow"].hooks = made["airflow.hooks"]  # type: ignore[attr-defined]
    made["airflow.hooks"].base = made["airflow.hooks.base"]  # type: ignore[attr-defined]
    return made


@contextmanager
def installed() -> Iterator[None]:
    """The stand-in in ``sys.modules`` while inside; whatever was there before comes back."""
    made = modules()
    saved = {name: sys.modules.get(name) for name in made}
    sys.modules.update(made)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_dag_file(path: Path, name: str) -> ModuleType:
    """Import a DAG file as Airflow's DAG processor does (the stand-in must be installed)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def the_dag(module: ModuleType) -> DAG:
    dags = [v for v in vars(module).values() if isinstance(v, DAG)]
    assert len(dags) == 1, f"one DAG per file, found {len(dags)}"
    return dags[0]


def main(argv: list[str]) -> int:
    example, run_id, *rest = argv
    conf = json.loads(rest[0]) if rest else None
    # A worker's task log: INFO and up from every logger, bulkops' included.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with installed():
        module = load_dag_file(Path(example), "example_airflow_dag")
        built = the_dag(module)
        (call,) = built.calls
        try:
            value = built.run_task(call.task_id, run_id, conf)
        except AirflowFailException:
            logging.exception("task failed, no retry")
            return 2
        except Exception:
            logging.exception("task failed, up for retry")
            return 1
    print(json.dumps(value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
