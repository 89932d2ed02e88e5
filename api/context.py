"""The per-process wiring shared by the API and the workers: settings, job store, blob store."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from image2model.api.store import JobStore, open_store
from image2model.api.webhooks import WebhookStore, open_webhook_store
from image2model.core.settings import Settings, get_settings
from image2model.core.storage import BlobStore, open_blob_store


@dataclass
class Services:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    webhooks: WebhookStore


def build_services(settings: Settings) -> Services:
    """Open the stores the settings select."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    store.progress_min_interval = settings.progress_min_interval  # the workers' progress events, too
    return Services(
        settings=settings, store=store, blobs=open_blob_store(settings), webhooks=open_webhook_store(store)
    )


@lru_cache(maxsize=1)
def services() -> Services:
    """This process's services, built once from the environment."""
    return build_services(get_settings())
