"""Running tasks: trigger-rule evaluation, one task attempt, and a whole DAG run in one process."""
