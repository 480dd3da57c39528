"""Live updates: one shared poll of the metastore per app fanned out to one server-sent-events stream per tab."""
