"""What every verb needs: the config, the host database, the backend."""
from __future__ import annotations

import functools
import os

from virtio_ovs.backend import factory
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.validate import validate_remote, validate_seconds


# Verbs that show no port's link state: their connection does not
# replicate it (the columns ovs-vswitchd rewrites for every port a plug
# adds).
WRITE_ONLY_VERBS = frozenset({"plug", "unplug"})


class Context:
    """What every verb needs: config, the host database, the backend."""

    def __init__(self, args):
        from virtio_ovs import conf as conf_mod
        from virtio_ovs.ovsdb.connection import set_ssl_files
        self.conf = conf_mod.load(args.config_file, setup_logging=False)
        ssl_files = {"private-key": args.private_key or self.conf.ovs.ssl_key_file,
                     "certificate": args.certificate or self.conf.ovs.ssl_cert_file,
                     "ca-cert": args.ca_cert or self.conf.ovs.ssl_ca_cert_file}
        self.remote = validate_remote(args.db) if args.db is not None \
            else conf_mod.ovsdb_remote(self.conf)
        if "ssl:" in self.remote:
            for field, path in ssl_files.items():
                if not path:
                    raise UserError(field, "an ssl: remote needs --private-key,"
                                    " --certificate and --ca-cert (or [ovs] "
                                    "ssl_key_file, ssl_cert_file, "
                                    "ssl_ca_cert_file)")
                if not os.path.isfile(path):
                    raise UserError(field, f"{path} is not a readable file")
        self.nb_remote = conf_mod.ovn_nb_remote(self.conf)
        if factory.kind(self.conf).needs_nb and "ssl:" in self.nb_remote:
            ssl_files = self._nb_ssl_files(ssl_files)
        set_ssl_files(*ssl_files.values())
        self.timeout = validate_seconds(args.timeout, "timeout", 0, 3600) \
            if args.timeout is not None else self.conf.ovs.ovsdb_timeout
        # A write verb's --dry-run (gc's own --dry-run writes no OVSDB).
        self.dry_run = bool(getattr(args, "dry_run", False)) and \
            args.verb != "gc"
        self.wait = not args.no_wait and not self.dry_run
        self.args = args
        self._db = None

    def _nb_ssl_files(self, ovs_files: dict) -> dict:
        """python-ovs has one set of SSL files per process: an ssl: NB
        needs its own files, and the same ones as an ssl: OVSDB."""
        ovn = self.conf.ovn
        nb_files = {"private-key": ovn.ovn_nb_private_key,
                    "certificate": ovn.ovn_nb_certificate,
                    "ca-cert": ovn.ovn_nb_ca_cert}
        for field, path in nb_files.items():
            if not path or not os.path.isfile(path):
                raise UserError("ovn_nb_connection", "an ssl: NB needs "
                                "[ovn] ovn_nb_private_key, ovn_nb_certificate "
                                "and ovn_nb_ca_cert (readable files)")
            if "ssl:" in self.remote and ovs_files[field] != path:
                raise UserError("ovn_nb_connection", "with ssl: remotes for "
                                "both OVSDB and the NB, their key, "
                                "certificate and CA must be the same files "
                                "(python-ovs keeps one set per process)")
        return nb_files

    @property
    def db(self):
        """The host database: one connection, opened on first use."""
        if self._db is None:
            self._db = factory.open_host_db(
                self.remote, self.timeout, dry_run=self.dry_run,
                link_status=self.args.verb not in WRITE_ONLY_VERBS)
        return self._db

    @functools.cached_property
    def backend(self):
        """The network backend that [agent] backend selects (one per
        command, with one connection to each database)."""
        return factory.build_backend(
            self.conf, self.db, self.timeout,
            bool(getattr(self.args, "allow_shared_socket_dir", False)),
            self.dry_run)
