"""virtio-ovs: wire virtio NICs (vhost-net TAPs, vhost-user sockets) into Open vSwitch."""


def version() -> str:
    """The installed distribution's version ("unknown" from a bare
    checkout that was never installed)."""
    from importlib import metadata  # 20 ms: only when asked
    try:
        return metadata.version("virtio-ovs")
    except metadata.PackageNotFoundError:
        return "unknown"
