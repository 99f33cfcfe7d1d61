"""virtio-ovs-agent --config-file FILE [--config-file FILE2]"""
from __future__ import annotations

import logging
import sys

from oslo_log import log as oslo_log

from virtio_ovs import conf as conf_mod
from virtio_ovs.core.errors import UserError, VirtioOvsError

LOG = logging.getLogger(__name__)
# The python-ovs modules that make a Vlog when imported.
VLOG_MODULES = ("ovs.db.idl", "ovs.dns_resolve", "ovs.fatal_signal",
                "ovs.jsonrpc", "ovs.poller", "ovs.reconnect",
                "ovs.socket_util", "ovs.stream", "ovs.unixctl.client",
                "ovs.unixctl.server", "ovs.daemon")


def setup_logging(conf) -> None:
    """oslo.log, as every OpenStack service: [DEFAULT] debug, log_file,
    log_dir, use_journal, use_syslog, use_json, watch_log_file and the
    rest. Called again on SIGHUP: a file that logrotate moved away
    (``create`` mode) is opened anew. python-ovs's own log (reconnects,
    its warnings) goes into the same log."""
    oslo_log.setup(conf, "virtio-ovs")
    # pyroute2 logs every netlink message at DEBUG: with 1000 TAPs the
    # periodic check's one link dump became megabytes of log and seconds
    # of a blocked event loop. Its debug output is not ours to show.
    # pyroute2 resets its logger to level 0 when it is first imported,
    # which is later: a filter on the handlers holds whatever the order.
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_libraries)
    route_python_ovs_log()


def _quiet_libraries(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.INFO or \
        not record.name.startswith(("pyroute2", "asyncio"))


def route_python_ovs_log() -> None:
    """python-ovs logs through its own vlog, to loggers named after its
    destinations, and only once initialised: its console destination, at
    INFO, goes to the root logger's handlers as logger "ovs" ("reconnect:
    unix:...: connected"); its file and syslog destinations stay off."""
    import importlib
    import ovs.vlog
    # python-ovs refuses a module's Vlog made after init: import every
    # module that makes one first.
    for module in VLOG_MODULES:
        importlib.import_module(module)
    try:
        ovs.vlog.Vlog.init(None)
    except AssertionError:  # initialised already (a reload)
        pass
    console = logging.getLogger("console")
    console.handlers.clear()  # init's own stderr: the root's handlers log
    console.filters[:] = [_as_python_ovs]
    ovs.vlog.Vlog.set_levels_from_string("any:console:info")
    ovs.vlog.Vlog.set_levels_from_string("any:syslog:off")
    ovs.vlog.Vlog.set_levels_from_string("any:file:off")
    ovs.vlog.Vlog.set_pattern("console", "%0c: %0m")  # no padding


def _as_python_ovs(record: logging.LogRecord) -> bool:
    """python-ovs's console destination, logged as "ovs" (its module is
    the message's first word: "reconnect: unix:...: connected")."""
    record.name = "ovs"
    return True


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
        agent = build_agent(conf, reopen_logs=setup_logging)
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
