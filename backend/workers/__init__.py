"""Background work: one job queue in PostgreSQL, handlers by job kind."""
