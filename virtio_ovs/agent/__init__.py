"""virtio-ovs-agent: reconciles OVSDB state into bridges, tags and flows."""
