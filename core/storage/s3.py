"""Blobs as objects in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, ...), through boto3.

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance
role). Downloads never pass through the API: it redirects clients to presigned URLs, which boto3 computes
locally, without a request."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.config import Config

from image2model.core.storage.base import check_key

_DELETE_BATCH = 1000  # most keys one DeleteObjects request takes


class S3BlobStore:
    """Objects under `prefix` in one bucket. A PUT replaces an object whole, so a re-run overwrites cleanly."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "", region: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # Path-style addressing is what MinIO and most other S3-compatible servers expect at their own endpoint.
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,  # readiness answers in seconds, not minutes, when the endpoint is down
        )
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put_file(self, key: str, source: Path, move: bool = False) -> int:
        """Upload a local file as `key`; returns its size."""
        size = source.stat().st_size
        with source.open("rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body)
        if move:
            source.unlink()
        return size

    def adopt_dir(self, prefix: str, source: Path) -> None:
        """Upload every file of `source` as `prefix/<name>`, then remove `source`. A failure part way leaves
        some objects behind: the caller deletes the prefix."""
        for path in sorted(source.iterdir()):
            if path.is_file():
                self.put_file(f"{prefix}/{path.name}", path)
        shutil.rmtree(source)

    def local_path(self, key: str, scratch: Path) -> Path:
        """Download the object into `scratch` (created if needed) under its own name."""
        scratch.mkdir(parents=True, exist_ok=True)
        dest = scratch / PurePosixPath(key).name
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            with dest.open("wb") as out:
                shutil.copyfileobj(body, out, 1024 * 1024)
        finally:
            body.close()
        return dest

    def serve(self, key: str, filename: str, media_type: str, ttl: int) -> Path | str:
        """A presigned GET URL, valid `ttl` seconds, that answers with the object as an attachment."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
                "ResponseContentType": media_type,
            },
            ExpiresIn=ttl,
        )
        return url

    def exists(self, key: str) -> bool:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1)
        return any(obj["Key"] == self._key(key) for obj in response.get("Contents", []))

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix/` (a job id), a page of keys at a time."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix) + "/", PaginationConfig={"PageSize": _DELETE_BATCH}
        )
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if not keys:
                continue
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise OSError(
                    f"S3 kept {len(response['Errors'])} object(s), e.g. {first['Key']}: {first['Code']}"
                )

    def check(self) -> None:
        """Raise unless the bucket answers with these credentials (HeadBucket)."""
        self.client.head_bucket(Bucket=self.bucket)
