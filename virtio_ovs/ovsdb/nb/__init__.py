"""The OVN northbound database facade."""
