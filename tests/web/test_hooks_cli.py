"""`flightlog hooks`: add, list and revoke webhook secrets; a running server honours the change."""

from __future__ import annotations

import subprocess
import sys

import orjson
from flightlog.schema.hook_secrets import HookFile, HookSecrets


def hooks(data_dir, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flightlog.web.cli", "hooks", *args, "--data-dir", str(data_dir)],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


def test_add_list_revoke_and_the_refusals(tmp_path):
    data = tmp_path / "data"
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    added = hooks(data, "add-github", "--tenant", "acme", "--secret-file", str(secret), "--name", "shop")
    assert added.returncode == 0, added.stderr
    assert "for tenant acme" in added.stdout and "0123456789abcdef" not in added.stdout
    assert oct((data / "hooks.json").stat().st_mode & 0o777) == "0o600"
    # the same secret for another tenant would make a delivery's tenant ambiguous
    twice = hooks(data, "add-github", "--tenant", "globex", "--secret-file", str(secret))
    assert twice.returncode == 2 and "already registered" in twice.stderr
    short = hooks(data, "add-gitlab", "--tenant", "acme", "--secret-file", "-", stdin="short")
    assert short.returncode == 2 and "at least 16" in short.stderr
    assert hooks(data, "add-gitlab", "--tenant", "acme", "--secret-file", "-", stdin="x" * 20).returncode == 0
    missing = hooks(data, "add-github", "--tenant", "acme", "--secret-file", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    listed = [orjson.loads(line) for line in hooks(data, "list", "--json").stdout.splitlines()]
    assert [(r["provider"], r["tenant"]) for r in listed] == [("github", "acme"), ("gitlab", "acme")]
    assert all("secret" not in r for r in listed)
    # the gitlab token is kept as a hash only
    assert "x" * 20 not in (data / "hooks.json").read_text()
    view = HookSecrets(HookFile(data))
    assert view.pairs("github") == [("acme", "0123456789abcdef0123456789abcdef")]
    revoked = hooks(data, "revoke", listed[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert view.pairs("github") == []  # re-read on change, as a running server does
    assert hooks(data, "revoke", "nope").returncode == 2
