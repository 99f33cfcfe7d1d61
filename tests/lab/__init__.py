"""The test lab: private OVS, OVN, libvirtd, QEMU guests and testpmd for
the functional tests, the benchmarks and the demo. Not part of the product
(the wheel holds virtio_ovs/ only); nothing under virtio_ovs/ imports it."""
