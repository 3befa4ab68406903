"""Chat workspaces at rest: the file of an embedded deployment and the table of a server one
(exercised here on chDB, which runs the same DDL), with secrets kept where only the server reads."""

from __future__ import annotations

import pytest
from flightlog.schema.chatops_workspaces import (
    WorkspaceFile,
    WorkspaceProblem,
    Workspaces,
    WorkspaceTable,
    new_workspace,
)


def test_the_table_keeps_the_latest_version_of_a_team_and_forgets_a_removed_one(store):
    table = WorkspaceTable(store)
    table.put(new_workspace("T1", "acme", signing_secret="s1", channels=["C1"]))
    table.put(new_workspace("T2", "beta", mattermost_token="tok"))
    table.put(new_workspace("T1", "acme-two", signing_secret="s2", bot_token="xoxb-9", silencers=["U1"]))
    loaded = {w.team: w for w in table.load()}
    assert set(loaded) == {"T1", "T2"}
    assert (loaded["T1"].tenant, loaded["T1"].signing_secret, loaded["T1"].bot_token) == ("acme-two", "s2", "xoxb-9")
    assert loaded["T1"].channels == () and loaded["T1"].silencers == ("U1",)
    assert loaded["T2"].mattermost_token_matches("tok") and not loaded["T2"].mattermost_token_matches("tok2")
    assert "tok" not in loaded["T2"].mattermost_token_hash
    table.remove("T1")
    assert [w.team for w in table.load()] == ["T2"]
    with pytest.raises(WorkspaceProblem, match="no workspace 'T1'"):
        table.remove("T1")


def test_the_file_is_private_replaces_a_team_and_the_server_sees_a_change_on_its_next_request(tmp_path):
    source = WorkspaceFile(tmp_path)
    view = Workspaces(source)
    view.refresh()
    assert view.get("T1") is None
    source.put(new_workspace("T1", "acme", signing_secret="s1"))
    view.refresh()
    assert view.get("T1").tenant == "acme"
    source.put(new_workspace("T1", "other", signing_secret="s1", channels=["C9"]))
    view.refresh()
    assert view.get("T1").tenant == "other" and not view.get("T1").allows_channel("C1")
    assert (tmp_path / "chatops.json").stat().st_mode & 0o077 == 0
    source.remove("T1")
    view.refresh()
    assert view.get("T1") is None


@pytest.mark.parametrize(("kwargs", "flag"), [
    ({"team": "T 1", "tenant": "acme", "signing_secret": "s"}, "--team"),
    ({"team": "T1", "tenant": "ac me", "signing_secret": "s"}, "--tenant"),
    ({"team": "T1", "tenant": "acme"}, "--signing-secret-file"),
    ({"team": "T1", "tenant": "acme", "signing_secret": "s", "channels": ["C1,"]}, "--channels"),
])
def test_a_bad_workspace_is_refused_naming_the_flag(kwargs, flag):
    team, tenant = kwargs.pop("team"), kwargs.pop("tenant")
    with pytest.raises(WorkspaceProblem, match=flag):
        new_workspace(team, tenant, **kwargs)
