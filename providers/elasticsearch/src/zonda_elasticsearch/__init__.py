"""Zonda's elasticsearch provider: ElasticsearchHook, the search and index operators, the query sensor and its
trigger, SqlToElasticsearchOperator and the task-log handler.

Discovery imports this package to read :mod:`zonda_elasticsearch.manifest`, so it imports nothing itself: the hook and
operator modules (and their client libraries) load only when a DAG or the registry asks for them.
"""
