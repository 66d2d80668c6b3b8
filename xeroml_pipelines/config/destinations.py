"""Where an export writes, as declared in YAML: each provider's destination resource is its own
model, chosen by `provider`. No cloud SDK is imported here: a provider's loads when its first
client is opened."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from xeroml_pipelines.destinations.azure import AzureContainer
from xeroml_pipelines.destinations.gcs import GCSBucket
from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.destinations.s3 import S3Bucket

Destination = Annotated[LocalFolder | S3Bucket | GCSBucket | AzureContainer, Field(discriminator="provider")]

_PROVIDERS: dict[str, type[LocalFolder | S3Bucket | GCSBucket | AzureContainer]] = {
    "local": LocalFolder,
    "s3": S3Bucket,
    "gcs": GCSBucket,
    "azure": AzureContainer,
}


def stored_location(destination: Mapping[str, Any]) -> str:
    """The location of a destination that was validated when it was stored, read without
    validating it again: a Dagster resource infers its config schema for each instance (about
    3 ms), which a listing of thousands of registered exports would pay for each one."""
    return _PROVIDERS[destination["provider"]].model_construct(**destination).location
