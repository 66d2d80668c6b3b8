"""An S3 client for the spec's credentials: access keys or the default chain (environment,
profile, instance role), optionally an IAM role assumed on top (with an external id, refreshed
before it expires), and path-style addressing for S3-compatible stores. Imported only when an
S3 destination opens its client: boto3 takes most of a second to load."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

ROLE_SESSION_NAME = "xeroml-export"


def s3_client(
    *,
    region: str | None,
    endpoint_url: str | None,
    addressing_style: str,
    max_attempts: int,
    profile: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    role_arn: str | None = None,
    external_id: str | None = None,
    sts_endpoint_url: str | None = None,
) -> Any:
    session = boto3.session.Session(
        profile_name=profile,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region,
    )
    if role_arn:
        session = _assumed_role_session(session, role_arn, external_id, sts_endpoint_url, region)
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": max_attempts, "mode": "standard"}, s3={"addressing_style": addressing_style}),
    )


def _assumed_role_session(
    source: boto3.session.Session, role_arn: str, external_id: str | None, sts_endpoint_url: str | None, region: str | None
) -> boto3.session.Session:
    extra: dict[str, str] = {"RoleSessionName": ROLE_SESSION_NAME}
    if external_id:
        extra["ExternalId"] = external_id

    def create_client(service: str, **kwargs: Any) -> Any:
        return source.client(service, endpoint_url=sts_endpoint_url, region_name=region, **kwargs)

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=create_client, source_credentials=source.get_credentials(), role_arn=role_arn, extra_args=extra
    )
    # Refreshed before they expire, so an export longer than the role's session still works.
    core = botocore.session.Session()
    core._credentials = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)
    return boto3.session.Session(botocore_session=core, region_name=region)
