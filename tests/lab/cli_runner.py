"""Run many virtio-ovs-ctl invocations in one process, for property-based
tests (a new interpreter per call would cost ~0.4 s).

Reads one JSON array of arguments per line on stdin (lone surrogates stand
for undecodable argv bytes, as Python's own argv decoding makes them) and
writes one JSON object per line (for ``null``, only the links): the exit code, stdout, stderr, whether an
exception escaped ``main`` (a traceback: always a bug) and the links of
the namespace afterwards. Run it inside the test's namespace.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback

from virtio_ovs.cli.main import main as cli_main


def run_one(argv: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    code, trace = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: B902 - reported, never swallowed
            trace = traceback.format_exc()
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "traceback": trace, "links": sorted(os.listdir("/sys/class/net"))}


class Runner:
    """The test's side: this module running in ``box``'s namespace."""

    def __init__(self, box):
        self.box = box
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", box.netns, sys.executable, "-m",
             "tests.lab.cli_runner"], env=box.env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, argv: list[str] | None) -> dict:
        """One invocation's reply (None: only the links)."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    for line in sys.stdin:
        argv = json.loads(line)  # null: only the links
        reply = run_one(argv) if argv is not None else {
            "links": sorted(os.listdir("/sys/class/net"))}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
