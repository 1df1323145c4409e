"""Typed interfaces of the parties we cannot reach here, and database-backed simulators of them."""
