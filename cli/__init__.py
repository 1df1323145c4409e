"""The ``orderly`` command line: administration through the services layer (no Temporal)."""
