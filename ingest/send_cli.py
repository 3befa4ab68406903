"""`flightlog send`: ship lines from stdin, a file, or a command's output to a flightlog server.

    make test 2>&1 | flightlog send --service api
    flightlog send --file build.log --build-id 1234
    flightlog send --tee -- pytest -q          # runs pytest, ships its stdout and stderr
    flightlog send --build-status success      # the build's status, as its CI would report it

The build ID defaults from CI variables (CI_BUILD_ID, GITHUB_RUN_ID, CI_PIPELINE_ID, BUILD_ID)
and the host from HOSTNAME. With a build ID, running a command also reports the build's status
(running, then success or failure by the command's exit status) to /api/v1/builds/{id}/events,
with the repo, branch, commit and run link GitHub Actions or GitLab CI put in the environment;
`--build-status` alone reports that status and reads nothing; with --file, after the file is
shipped. Lines go in gzip'd batches, retried with backoff on 429 and 5xx (honouring Retry-After). Exit status: the command's own when it failed; else 1 when any line could not be
delivered; else 0.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO

from flightlog.ingest.shipper import Shipper

CI_BUILD_VARS = ("CI_BUILD_ID", "GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_ID")
BUILD_STATUSES = ("queued", "running", "success", "failure", "cancelled")
CI_DEPLOY_VARS = ("DEPLOY_ID",)
DEFAULT_URL = "http://127.0.0.1:7777"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "send",
        help="ship lines from stdin, a file or a command to a flightlog server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("FLIGHTLOG_URL", DEFAULT_URL),
        help=f"server URL (env FLIGHTLOG_URL; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("FLIGHTLOG_API_KEY"),
        help="ingest key, sent as a bearer token (env FLIGHTLOG_API_KEY)",
    )
    parser.add_argument(
        "--build-id",
        default=_first_env(CI_BUILD_VARS),
        help="build ID (default: $CI_BUILD_ID, $GITHUB_RUN_ID or $BUILD_ID)",
    )
    parser.add_argument("--deploy-id", default=_first_env(CI_DEPLOY_VARS), help="deploy ID (default: $DEPLOY_ID)")
    parser.add_argument("--service", default=None, help="service name")
    parser.add_argument(
        "--host", default=os.environ.get("HOSTNAME") or socket.gethostname(), help="host name (default: $HOSTNAME)"
    )
    parser.add_argument("--level", default=None, help="level of every line (default: the server decides)")
    parser.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="an attribute on every line (repeatable)"
    )
    parser.add_argument("--file", "-f", default=None, help="read this file instead of stdin")
    parser.add_argument("--tee", action="store_true", help="also pass every line through to stdout")
    parser.add_argument("--batch-lines", type=int, default=1000, help="lines in one request at most")
    parser.add_argument("--batch-seconds", type=float, default=1.0, help="how long a line waits for its batch")
    parser.add_argument(
        "--max-retry-seconds", type=float, default=60.0, help="how long to keep retrying a batch on 429/5xx"
    )
    parser.add_argument(
        "--build-status", choices=BUILD_STATUSES, default=None,
        help="report this status of the build (alone: report it and exit; with a command: instead of "
             "the one its exit status gives)",
    )
    parser.add_argument(
        "--no-build-status", action="store_true", help="with a command: do not report the build's status"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS: run it and ship its output")
    parser.set_defaults(handler=run)


def _report_status(args: argparse.Namespace, status: str) -> int:
    """Report the build's status; a failure to report is said on stderr, never hides the command's."""
    from flightlog.ingest.cicd.report import ci_fields, post_event

    try:
        post_event(args.url, "build", args.build_id, {"status": status, **ci_fields()}, api_key=args.api_key,
                   max_retry_seconds=args.max_retry_seconds)
    except RuntimeError as exc:
        print(f"flightlog send: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _first_env(names: Iterable[str]) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    tags: dict[str, str] = {}
    for tag in args.tag:
        key, sep, value = tag.partition("=")
        if not sep or not key:
            print(f"flightlog send: --tag {tag!r} must be KEY=VALUE", file=sys.stderr)
            return 2
        tags[key] = value
    report = bool(args.build_id) and not args.no_build_status and (bool(command) or args.build_status is not None)
    if args.build_status and not args.build_id:
        print("flightlog send: --build-status needs a build ID (--build-id, or $GITHUB_RUN_ID …)", file=sys.stderr)
        return 2
    if args.build_status and not command and not args.file:
        return _report_status(args, args.build_status)
    defaults = {"service": args.service, "host": args.host, "build_id": args.build_id, "deploy_id": args.deploy_id}
    shipper = Shipper(
        args.url,
        {k: v for k, v in defaults.items() if v},
        api_key=args.api_key,
        batch_lines=args.batch_lines,
        batch_seconds=args.batch_seconds,
        max_retry_seconds=args.max_retry_seconds,
        on_error=lambda message: print(f"flightlog send: {message}", file=sys.stderr, flush=True),
    )
    base = {"level": args.level} if args.level else {}
    exit_status = 0
    try:
        if command:
            if report:
                _report_status(args, "running")
            exit_status = _run_command(command, shipper, base, tags, args.tee)
            if report:
                _report_status(args, args.build_status or ("success" if exit_status == 0 else "failure"))
        elif args.file:
            try:
                with open(args.file, "rb") as f:
                    _pump(f, shipper, base, tags, sys.stdout.buffer if args.tee else None)
            except OSError as exc:
                print(f"flightlog send: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
                return 2
            if report:
                exit_status = _report_status(args, args.build_status)
        else:
            _pump(sys.stdin.buffer, shipper, base, tags, sys.stdout.buffer if args.tee else None)
    except KeyboardInterrupt:
        exit_status = 130
    finally:
        shipper.close()
    if shipper.undelivered:
        print(
            f"flightlog send: {shipper.undelivered} of {shipper.sent + shipper.undelivered} lines were not "
            f"delivered to {args.url}",
            file=sys.stderr,
        )
    if exit_status:
        return exit_status
    return 1 if shipper.undelivered else 0


def _pump(
    stream: IO[bytes],
    shipper: Shipper,
    base: dict[str, str],
    tags: dict[str, str],
    tee: IO[bytes] | None,
    lock: threading.Lock | None = None,
) -> None:
    for raw in iter(stream.readline, b""):
        if tee is not None:
            if lock:
                with lock:
                    tee.write(raw)
                    tee.flush()
            else:
                tee.write(raw)
                tee.flush()
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not line.strip():
            continue
        row = {"ts": time.time_ns(), "message": line, **base}
        if tags:
            row["attrs"] = tags
        shipper.put(row)


def _run_command(command: list[str], shipper: Shipper, base: dict[str, str], tags: dict[str, str], tee: bool) -> int:
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"flightlog send: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        shipper.put(
            {"ts": time.time_ns(), "level": "error", "message": f"cannot run {command[0]}: {exc}", "attrs": tags}
        )
        return 127
    lock = threading.Lock()
    readers = [
        threading.Thread(
            target=_pump,
            args=(proc.stdout, shipper, base, {**tags, "stream": "stdout"}, sys.stdout.buffer if tee else None, lock),
        ),
        threading.Thread(
            target=_pump,
            args=(proc.stderr, shipper, base, {**tags, "stream": "stderr"}, sys.stderr.buffer if tee else None, lock),
        ),
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    status = proc.wait()
    shipper.put(
        {
            "ts": time.time_ns(),
            "level": "info" if status == 0 else "error",
            "message": f"{' '.join(command)} exited with status {status}",
            "attrs": {**tags, "exit_code": str(status)},
        }
    )
    return status if status >= 0 else 128 - status
