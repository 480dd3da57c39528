"""Zonda's Celery provider: the CeleryExecutor, its Celery app and ``zonda celery worker``.

Nothing is imported here: the manifest is read without importing Celery, and each module imports Celery only
when it is used.
"""
