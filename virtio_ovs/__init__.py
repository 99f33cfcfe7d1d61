"""virtio-ovs: wire virtio NICs (vhost-net TAPs, vhost-user sockets) into Open vSwitch."""
from importlib import metadata


def version() -> str:
    """The installed distribution's version ("unknown" from a bare
    checkout that was never installed)."""
    try:
        return metadata.version("virtio-ovs")
    except metadata.PackageNotFoundError:
        return "unknown"
