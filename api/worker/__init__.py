"""Huey queue, tasks and consumer of the job service."""
