"""virtio-ovs: wire virtio NICs (vhost-net TAPs, vhost-user sockets) into Open vSwitch."""
