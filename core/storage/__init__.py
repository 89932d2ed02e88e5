"""Blob storage for uploaded inputs and generated outputs: a directory (`data_dir/blobs`, or a shared mount) or an
S3-compatible bucket, chosen by `IMAGE2MODEL_BLOB_URL` alone."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from image2model.core.settings import Settings
from image2model.core.storage.base import BlobStore, check_key
from image2model.core.storage.local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "check_key", "open_blob_store"]


def open_blob_store(settings: Settings) -> BlobStore:
    """The store `settings.blob_url` names: empty for `data_dir/blobs`, a directory, or `s3://bucket/prefix`."""
    url = settings.blob_url.strip()
    if not url:
        return LocalBlobStore(settings.blobs_dir)
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"IMAGE2MODEL_BLOB_URL names no bucket: {url!r} (expected s3://bucket/prefix)")
        from image2model.core.storage.s3 import S3BlobStore  # boto3 is imported only where S3 is used

        return S3BlobStore(
            parts.netloc, parts.path, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
        )
    if "://" in url:
        raise ValueError(f"IMAGE2MODEL_BLOB_URL must be a directory or s3://bucket/prefix, not {url!r}")
    return LocalBlobStore(Path(url))
