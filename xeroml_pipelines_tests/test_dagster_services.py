"""The end-to-end suite's own services: dagster-webserver and dagster-daemon start cleanly on a
fresh DAGSTER_HOME every time (they once raced to create the instance's SQLite storage), and
are gone, whole process groups, once stopped."""

from __future__ import annotations

from pathlib import Path

from xeroml_pipelines_tests.dagster_services import DagsterServices, group_alive

DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def _daemons_healthy(svc: DagsterServices) -> bool:
    statuses = svc.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(s["healthy"] for s in statuses if s["required"])


def test_webserver_and_daemon_start_on_a_fresh_home_ten_times_in_a_row(tmp_path: Path) -> None:
    config = tmp_path / "exports.yaml"
    config.write_text(
        f"""
clickhouse: {{url: "chdb://{tmp_path}/chdb"}}
exports:
  - name: local
    project_id: demo
    start_date: 2025-01-13
    recheck_days: 0
    destination: {{provider: local, path: "{tmp_path}/export"}}
"""
    )
    for attempt in range(10):
        svc = DagsterServices(tmp_path / f"home-{attempt}", {"XEROML_CONFIG": str(config)})
        with svc:
            groups = [p.pid for p in svc.procs]
            assert len(groups) == 2
            # the daemon heartbeats into the same storage the webserver reads
            svc.wait_for(lambda svc=svc: _daemons_healthy(svc), timeout=90, what=f"healthy daemons (start {attempt + 1})", poll=1)
        logs = svc.logs(tail=1 << 24)
        assert "more than one head" not in logs and "Traceback" not in logs, f"start {attempt + 1}:\n{logs[-4000:]}"
        assert not any(group_alive(pid) for pid in groups), f"start {attempt + 1}: a service outlived stop()"
