"""AWS sources: S3 buckets (``aws.s3_buckets``) and S3 objects (``aws.s3_objects``).

Both speak to S3 through aiobotocore (the ``aws`` extra). This module stays light: the
aiobotocore imports happen when a repository class is first imported.

URIs: ``s3://`` lists the account's buckets; ``s3://bucket`` and ``s3://bucket/prefix`` list
the objects of a bucket (under a key prefix). Keyword options go to the repository, e.g.
``asyncrepo.open("s3://bucket/logs/", client_kwargs={"endpoint_url": "http://localhost:9000"})``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, unquote

from ...exceptions import ConfigurationError
from ...repository import Repository

__all__ = ["from_uri"]


def from_uri(parts: SplitResult, options: dict[str, Any]) -> Repository:
    """``s3://`` -> ``S3Buckets(**options)``; ``s3://bucket/prefix`` -> ``S3Objects``."""
    if parts.query or parts.fragment:
        raise ConfigurationError(
            "s3:// URIs take no query string or fragment: pass options as keyword arguments",
            source="aws",
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "s3:// URIs take no credentials: use the AWS environment, a profile or session_kwargs=",
            source="aws",
        )
    # Through the registry: a missing aiobotocore gives the install hint.
    from ...registry import get_class

    bucket = parts.netloc
    prefix = unquote(parts.path.lstrip("/")) or None
    if not bucket:
        if prefix:
            raise ConfigurationError(f"no bucket in {parts.geturl()!r}", source="aws")
        return get_class("aws.s3_buckets")(**options)
    objects: Any = get_class("aws.s3_objects")
    repository: Repository = objects(bucket, prefix, **options)
    return repository
