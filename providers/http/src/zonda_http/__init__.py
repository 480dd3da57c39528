"""Zonda's http provider: HttpHook, HttpOperator, HttpSensor and HttpTrigger.

Discovery imports this package to read :mod:`zonda_http.manifest`, so it imports nothing itself: the hook and
operator modules (and their client libraries) load only when a DAG or the registry asks for them.
"""
