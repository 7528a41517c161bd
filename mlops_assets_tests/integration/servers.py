"""Start and stop the Dagster webserver and daemon for a project copy, for tests.

The generic process helpers live in mlops_assets/demo/processes.py (the incident replay starts
the daemon too); this module re-exports them and adds what only tests need
(`stop_automation`)."""

from __future__ import annotations

from mlops_assets.demo.processes import (  # noqa: F401  (re-exported for the tests)
    DAEMON_HEALTH,
    VENV_BIN,
    GraphQLError,
    Service,
    free_port,
    graphql,
    server_env,
    start_daemon,
    start_service,
    start_webserver,
    wait_daemon_healthy,
    wait_daemon_heartbeats,
    wait_for,
)

INSTIGATORS = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { name sensorState { id status } }
  schedules { name scheduleState { id status } } } } } }"""
STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } } }"""
STOP_SCHEDULE = """mutation($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""


def stop_automation(base_url: str) -> list[str]:
    """Stop every running sensor and schedule (as the UI's Automation toggles do); returns
    their names. Call it before starting the daemon, so no tick launches runs meanwhile:
    for tests of a manual path that the project's automation would otherwise join in."""
    stopped = []
    for repo in graphql(base_url, INSTIGATORS)["repositoriesOrError"]["nodes"]:
        todo = [(s["name"], s["sensorState"], STOP_SENSOR) for s in repo["sensors"]]
        todo += [(s["name"], s["scheduleState"], STOP_SCHEDULE) for s in repo["schedules"]]
        for name, state, mutation in todo:
            if state["status"] != "RUNNING":
                continue
            result = next(iter(graphql(base_url, mutation, {"id": state["id"]}).values()))
            if result["__typename"] == "PythonError":
                raise GraphQLError(f"stopping {name}: {result['message']}")
            stopped.append(name)
    return stopped
