"""plug"""
