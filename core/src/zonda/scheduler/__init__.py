"""The scheduler: creates DAG runs from schedules, decides task instances with trigger rules, queues them
within parallelism, DAG and pool limits, and hands them to an executor. It reads DAGs only in their serialized
form (written by the DAG processor), never by importing user code."""
