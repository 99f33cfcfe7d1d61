"""Where the log goes, for both commands: python-ovs's own log (vlog)
into Python's logging tree, and the libraries' debug noise kept out."""
from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)
# The python-ovs modules that make a Vlog when imported.
VLOG_MODULES = ("ovs.db.idl", "ovs.dns_resolve", "ovs.fatal_signal",
                "ovs.jsonrpc", "ovs.poller", "ovs.reconnect",
                "ovs.socket_util", "ovs.stream", "ovs.unixctl.client",
                "ovs.unixctl.server", "ovs.daemon")


def quiet_libraries() -> None:
    """pyroute2 logs every netlink message at DEBUG: with 1000 TAPs the
    agent's periodic link dump became megabytes of log and seconds of a
    blocked event loop. Their debug output is not ours to show. pyroute2
    resets its logger's level when it is first imported, which may be
    later: a filter on the root's handlers holds whatever the order."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_quiet_libraries)


def setup_cli(debug: bool, log_file: str | None) -> None:
    """virtio-ovs-ctl's --debug and --log-file: the commands' own log
    (transactions sent, TAPs made, python-ovs's reconnects) on stderr or
    appended to a file; without either, nothing but the command's output
    and its one-line error."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, filename=log_file,
        format="%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
    quiet_libraries()
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
        try:
            importlib.import_module(module)
        except ImportError:  # not in this release (3.1 has no dns_resolve)
            pass
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
