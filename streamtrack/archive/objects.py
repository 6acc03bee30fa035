"""The archive's bucket in an S3-compatible object store, through the `minio` client.

Four operations are all the archive needs (put, get, list, delete), so they are wrapped
here once: every failure to reach the store becomes `ArchiveUnavailable` (retryable), and
requests fail fast (short timeouts, one retry) because the archive writer has its own
retry loop, which keeps serving its consumer group meanwhile.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from streamtrack.config import Settings
from streamtrack.errors import RetryableError

TIMEOUT_S = 10.0


class ArchiveUnavailable(RetryableError):
    code = "archive_unavailable"


class ObjectStore:
    """One bucket; thread-safe (urllib3's pool)."""

    def __init__(self, settings: Settings) -> None:
        url = urlparse(settings.archive_endpoint)
        self.bucket = settings.archive_bucket
        self.endpoint = settings.archive_endpoint
        pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=TIMEOUT_S),
            retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            maxsize=8,
        )
        self._client = Minio(
            url.netloc, access_key=settings.archive_access_key or None, secret_key=settings.archive_secret_key or None,
            secure=url.scheme == "https", region=settings.archive_region, http_client=pool,
        )

    def _unavailable(self, what: str, exc: Exception) -> ArchiveUnavailable:
        return ArchiveUnavailable(f"object store {self.endpoint} (bucket {self.bucket!r}): {what} failed: {exc}")

    def ensure_bucket(self) -> None:
        try:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._unavailable("creating the bucket", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable("creating the bucket", exc) from exc

    def put(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._client.put_object(self.bucket, name, io.BytesIO(data), len(data), content_type=content_type)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(f"PUT {name}", exc) from exc

    def get(self, name: str) -> bytes:
        try:
            response = self._client.get_object(self.bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(f"GET {name}", exc) from exc

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every object under `prefix`, in name order."""
        try:
            for item in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if item.object_name is not None and not item.is_dir:
                    yield item.object_name, int(item.size or 0)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(f"LIST {prefix}", exc) from exc

    def delete(self, names: Iterable[str]) -> None:
        try:
            errors = list(self._client.remove_objects(self.bucket, [DeleteObject(n) for n in names]))
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable("DELETE", exc) from exc
        if errors:
            raise ArchiveUnavailable(f"object store {self.endpoint}: DELETE failed: {errors[0]}")
