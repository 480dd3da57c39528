"""Worker log servers: a try's log read over HTTP from the machine that ran it, with signed requests only.

A remote worker (``zonda celery worker``) keeps each try's log on its own disk. It serves that folder on a port of
its own (:mod:`.server`) and records the address with the try (``task_instance.log_server``); the web server, the
REST API and ``zonda tasks logs`` fetch from there (:mod:`.client`) when they have no local copy. Every request
carries a token that names the one file it may read and expires within a minute (:mod:`.signing`), signed with a
key derived from the installation's secret key, so the port gives nothing to anyone without that key.
"""
