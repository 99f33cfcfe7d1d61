"""virtio-ovs-agent --config-file FILE [--config-file FILE2]"""
from __future__ import annotations

import logging
import sys

from oslo_log import log as oslo_log

from virtio_ovs import conf as conf_mod, logs
from virtio_ovs.core.errors import UserError, VirtioOvsError

LOG = logging.getLogger(__name__)


def setup_logging(conf) -> None:
    """oslo.log, as every OpenStack service: [DEFAULT] debug, log_file,
    log_dir, use_journal, use_syslog, use_json and the rest. Called again
    on SIGHUP: a file that logrotate moved away (``create`` mode) is
    opened anew. python-ovs's own log (reconnects,
    its warnings) goes into the same log."""
    for handler in logging.getLogger().handlers:
        handler.close()  # oslo.log removes them without closing the files
    oslo_log.setup(conf, "virtio-ovs")
    logs.quiet_libraries()
    logs.route_python_ovs_log()


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
