"""Where an export writes, as declared in YAML: each provider's destination resource is its own
model, chosen by `provider`. No cloud SDK is imported here: a provider's loads when its first
client is opened."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from xeroml_pipelines.destinations.azure import AzureContainer
from xeroml_pipelines.destinations.gcs import GCSBucket
from xeroml_pipelines.destinations.local import LocalFolder
from xeroml_pipelines.destinations.s3 import S3Bucket

Destination = Annotated[LocalFolder | S3Bucket | GCSBucket | AzureContainer, Field(discriminator="provider")]
