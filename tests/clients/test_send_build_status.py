"""`flightlog send` reports a build's status: alone with --build-status, and around a command by
its exit status, with the fields GitHub Actions puts in the environment."""

from __future__ import annotations

import sys
import uuid

from tests.clients.test_send_and_handler import flightlog_send

GITHUB_ENV = {"GITHUB_REPOSITORY": "acme/shop", "GITHUB_REF_NAME": "main", "GITHUB_SHA": "3f1c" * 10,
              "GITHUB_ACTOR": "ana", "GITHUB_WORKFLOW": "CI", "GITHUB_SERVER_URL": "https://github.com"}


def _history(store, build_id: str) -> list[tuple]:
    return store.query(
        "SELECT status, repo, branch, commit, pipeline, url FROM build_events WHERE id = {b:String} "
        "ORDER BY received_ts", {"b": build_id},
    ).rows


async def test_a_failing_command_reports_running_then_failure_with_the_ci_fields(server, store):
    build_id = f"{uuid.uuid4().int % 10**10}"
    status, _out, err = await flightlog_send(
        "--url", server.url, "--", sys.executable, "-c", "import sys; print('3 failed'); sys.exit(1)",
        env={"GITHUB_RUN_ID": build_id, **GITHUB_ENV},
    )
    assert status == 1, err.decode()
    history = _history(store, build_id)
    assert [h[0] for h in history] == ["running", "failure"]
    assert tuple(history[-1][1:]) == ("acme/shop", "main", "3f1c" * 10, "CI",
                               f"https://github.com/acme/shop/actions/runs/{build_id}")
    assert [r["message"] for r in await server.rows(build_id)][0] == "3 failed"


async def test_a_passing_command_reports_success_and_build_status_alone_reads_no_stdin(server, store, tmp_path):
    build_id = f"b-{uuid.uuid4().hex[:8]}"
    status, _out, err = await flightlog_send("--url", server.url, "--build-id", build_id, "--", sys.executable,
                                             "-c", "print('ok')")
    assert status == 0, err.decode()
    assert [h[0] for h in _history(store, build_id)] == ["running", "success"]
    status, _out, err = await flightlog_send("--url", server.url, "--build-id", build_id, "--build-status",
                                             "cancelled", stdin=b"this is not shipped\n")
    assert status == 0, err.decode()
    assert [h[0] for h in _history(store, build_id)] == ["running", "success", "cancelled"]
    assert "this is not shipped" not in [r["message"] for r in await server.rows(build_id)]
    log = tmp_path / "build.log"
    log.write_text("step 9 done\n")
    status, _out, err = await flightlog_send("--url", server.url, "--build-id", build_id, "--file", str(log),
                                             "--build-status", "failure")
    assert status == 0, err.decode()
    assert [h[0] for h in _history(store, build_id)][-1] == "failure"
    assert "step 9 done" in [r["message"] for r in await server.rows(build_id)]


async def test_build_status_without_a_build_id_or_a_reachable_server_says_so(server):
    status, _out, err = await flightlog_send("--url", server.url, "--build-status", "success")
    assert status == 2 and b"needs a build ID" in err
    status, _out, err = await flightlog_send("--url", "http://127.0.0.1:9", "--build-id", "x", "--build-status",
                                             "success", "--max-retry-seconds", "0.5")
    assert status == 1 and b"could not report the build status" in err
