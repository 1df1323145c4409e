"""Thin I/O steps of the order workflow. Each is idempotent on the order id and step."""
