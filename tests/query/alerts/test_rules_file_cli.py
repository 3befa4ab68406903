"""`flightlog serve --rules FILE` refuses a bad file before starting, naming the rule and field."""

from __future__ import annotations

import subprocess

from tests.test_serve_process import flightlog_command


def test_serve_with_a_bad_rules_file_exits_naming_the_field(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text("rules:\n  - name: ok\n    query: level:error\n  - name: bad\n    condition: count >> 2\n")
    done = subprocess.run([*flightlog_command(), "serve", "--data-dir", str(tmp_path / "data"), "--rules", str(rules)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--rules {rules}: rules.1.condition: 'count >> 2' is not a condition" in done.stderr


def test_serve_with_an_alertmanager_url_that_is_not_http_exits(tmp_path):
    done = subprocess.run([*flightlog_command(), "serve", "--data-dir", str(tmp_path / "data"),
                           "--alertmanager-url", "alertmanager:9093"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--alertmanager-url" in done.stderr
