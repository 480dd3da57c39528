"""Typed operations over the metastore, shared by the CLI, the daemons, the web UI and the API."""
