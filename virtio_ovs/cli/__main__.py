"""python -m virtio_ovs.cli: virtio-ovs-ctl."""
from virtio_ovs.cli.main import run

run()
