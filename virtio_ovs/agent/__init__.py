"""virtio-ovs-agent: reconciles OVSDB state into bridges and flows."""
