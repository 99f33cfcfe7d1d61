"""OVSDB access through the python-ovs IDL."""
