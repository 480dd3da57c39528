"""``zonda dags port``: rewrite Airflow DAG files to Zonda's imports and names (a libcst codemod).

:mod:`zonda.porting.names` says where each Airflow name lives in Zonda, :mod:`zonda.porting.rewrite` rewrites one
source text, :mod:`zonda.porting.files` walks paths and writes the results. libcst comes with the ``port`` extra
(``pip install 'zonda[port]'``), so Zonda itself does not need it.
"""
