"""HTTP routes under /api/v1: parse, authorise, delegate to the job service."""
