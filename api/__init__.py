"""image2model job service: FastAPI app, event hub, Huey workers, job store and the `image2model` CLI."""
