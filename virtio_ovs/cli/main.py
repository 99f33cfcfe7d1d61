"""virtio-ovs-ctl: the ovs-vsctl companion for guest NICs."""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from typing import NoReturn, Sequence

from virtio_ovs.cli.output import clean
from virtio_ovs.cli.parser import build_parser
from virtio_ovs.core.errors import VirtioOvsError


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.debug or args.log_file:
        from virtio_ovs import logs
        try:
            logs.setup_cli(args.debug, args.log_file)
        except OSError as exc:
            print(f"virtio-ovs-ctl: --log-file: {exc.strerror}: "
                  f"{args.log_file}", file=sys.stderr)
            return 1
    try:
        from virtio_ovs.cli.context import Context
        from virtio_ovs.cli.verbs import VERBS
        return VERBS[args.verb](Context(args), args)
    except VirtioOvsError as exc:
        print(f"virtio-ovs-ctl: {clean(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.verb == "watch":  # the normal way to end a watch
            return 0
        print("virtio-ovs-ctl: interrupted", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_stdout()


def run() -> NoReturn:
    """The command (console script, ``python -m virtio_ovs.cli``):
    ``main`` without the cyclic garbage collector, then the exit without
    the interpreter's teardown, which frees every object one by one.
    A verb is short-lived: its collections took 55 ms of a 1000-VIF plug
    and the teardown 45 ms, and the memory goes back at the exit (``watch``,
    which runs until interrupted, turns the collector back on). Output and
    log are flushed first; a reader gone away ends quietly, as in
    ``main``."""
    gc.disable()
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _closed_stdout()
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _closed_stdout() -> int:
    """The reader went away (``list | head -1``): end quietly, as
    ovs-vsctl does. Python would report the failed flush at exit: stdout
    points at /dev/null from here on."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


if __name__ == "__main__":
    run()
