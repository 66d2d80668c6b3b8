"""dagster-aws's S3Resource plus what the spec's credentials need: an IAM role to assume (with
an optional external id, refreshed before it expires) and path-style addressing for
S3-compatible stores."""

from __future__ import annotations

from typing import Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
from dagster_aws.s3 import S3Resource
from pydantic import Field


class S3ClientResource(S3Resource):
    """dagster-aws's S3Resource plus what the spec's credentials need: an IAM role to assume
    (with optional external id) and path-style addressing for S3-compatible stores."""

    role_arn: str | None = Field(default=None, description="IAM role assumed through STS before any S3 call")
    external_id: str | None = Field(default=None, description="External id the role's trust policy requires")
    role_session_name: str = "xeroml-export"
    sts_endpoint_url: str | None = Field(default=None, description="Only for STS-compatible services other than AWS")
    addressing_style: Literal["auto", "virtual", "path"] = "auto"

    def get_client(self) -> Any:
        session = boto3.session.Session(
            profile_name=self.profile_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=self.region_name,
        )
        if self.role_arn:
            session = self._assumed_role_session(session)
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            config=Config(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                s3={"addressing_style": self.addressing_style},
            ),
        )

    def _assumed_role_session(self, source: boto3.session.Session) -> boto3.session.Session:
        extra: dict[str, str] = {"RoleSessionName": self.role_session_name}
        if self.external_id:
            extra["ExternalId"] = self.external_id

        def create_client(service: str, **kwargs: Any) -> Any:
            return source.client(service, endpoint_url=self.sts_endpoint_url, region_name=self.region_name, **kwargs)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=create_client,
            source_credentials=source.get_credentials(),
            role_arn=self.role_arn,
            extra_args=extra,
        )
        # Refreshed before they expire, so an export longer than the role's session still works.
        core = botocore.session.Session()
        core._credentials = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetcher.fetch_credentials)
        return boto3.session.Session(botocore_session=core, region_name=self.region_name)
