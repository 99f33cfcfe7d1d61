"""python -m virtio_ovs.cli: virtio-ovs-ctl."""
import sys

from virtio_ovs.cli.main import main

sys.exit(main())
