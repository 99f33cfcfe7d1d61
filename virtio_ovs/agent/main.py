"""virtio-ovs-agent --config-file FILE [--config-file FILE2]"""
from __future__ import annotations

import logging
import sys

from virtio_ovs import conf as conf_mod
from virtio_ovs.core.errors import UserError, VirtioOvsError

LOG = logging.getLogger(__name__)


def setup_logging(conf) -> None:
    handler = (logging.FileHandler(conf.log_file) if conf.log_file
               else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if conf.debug else logging.INFO)
    # pyroute2 logs every netlink message at DEBUG: with 1000 TAPs the
    # periodic check's one link dump became megabytes of log and seconds
    # of a blocked event loop. Its debug output is not ours to show.
    # pyroute2 resets its logger to level 0 when it is first imported,
    # which is later: a filter on our handler holds whatever the order.
    handler.addFilter(_quiet_libraries)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.INFO or \
        not record.name.startswith(("pyroute2", "asyncio"))


def main(argv: list[str] | None = None) -> int:
    try:
        conf = conf_mod.parse(sys.argv[1:] if argv is None else argv,
                              "virtio-ovs-agent")
        setup_logging(conf)
    except UserError as exc:
        print(f"virtio-ovs-agent: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the log file cannot be opened
        print(f"virtio-ovs-agent: [DEFAULT] log_file: {exc.strerror}: "
              f"{conf.log_file}", file=sys.stderr)
        return 1
    from virtio_ovs.agent.agent import build_agent
    try:
        agent = build_agent(conf)
    except UserError as exc:
        print(f"virtio-ovs-agent: {exc}", file=sys.stderr)
        return 1
    agent.install_signal_handlers()
    try:
        return agent.run()
    except VirtioOvsError as exc:
        # metrics_bind's port taken (2), or a configuration that cannot
        # work on this host, found at the first reconcile (1).
        LOG.error("%s", exc)
        print(f"virtio-ovs-agent: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
