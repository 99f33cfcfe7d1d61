"""What every verb needs: the config, the host database, the plugger."""
from __future__ import annotations

import os

from virtio_ovs.core.errors import UserError


class Context:
    """What every verb needs: config, the OVSDB API, the plugger."""

    def __init__(self, args):
        from virtio_ovs import conf as conf_mod
        from virtio_ovs.ovsdb.connection import set_ssl_files
        try:
            self.conf = conf_mod.load(args.config_file)
        except Exception as exc:  # oslo raises several config error types
            raise UserError("config-file", str(exc).splitlines()[0]) from None
        ssl_files = {"private-key": args.private_key or self.conf.ovs.ssl_key_file,
                     "certificate": args.certificate or self.conf.ovs.ssl_cert_file,
                     "ca-cert": args.ca_cert or self.conf.ovs.ssl_ca_cert_file}
        self.remote = args.db or conf_mod.ovsdb_remote(self.conf)
        if "ssl:" in self.remote:
            for field, path in ssl_files.items():
                if not path:
                    raise UserError(field, "an ssl: remote needs --private-key,"
                                    " --certificate and --ca-cert (or [ovs] "
                                    "ssl_key_file, ssl_cert_file, "
                                    "ssl_ca_cert_file)")
                if not os.path.isfile(path):
                    raise UserError(field, f"{path} is not a readable file")
        set_ssl_files(*ssl_files.values())
        self.timeout = args.timeout if args.timeout is not None \
            else self.conf.ovs.ovsdb_timeout
        if self.timeout <= 0:
            raise UserError("timeout", "must be a positive number of seconds")
        self.wait = not args.no_wait
        self._db = None

    @property
    def db(self):
        """The host database: one connection, opened on first use."""
        if self._db is None:
            from virtio_ovs.ovsdb.host.impl import connect
            self._db = connect(self.remote, self.timeout)
        return self._db

    def plugger(self):
        from virtio_ovs.plug.plugger import Plugger
        from virtio_ovs.plug.taps import TapManager
        return Plugger(self.db, TapManager())
