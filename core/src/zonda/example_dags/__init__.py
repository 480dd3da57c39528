"""Example DAGs shipped with Zonda (loaded when ``core.load_examples`` is true)."""
