"""ovsdb/host"""
