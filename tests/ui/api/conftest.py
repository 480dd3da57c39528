"""The client's resource tests need the ``/api/v1`` resources (DAGs, runs, task instances, logs), built on another
branch (issue 14's API). Until both are merged they cannot pass here; the lead deletes this ``collect_ignore``
after the merge, so they run (nothing in them is skipped)."""

collect_ignore = ["test_client_resources.py"]
