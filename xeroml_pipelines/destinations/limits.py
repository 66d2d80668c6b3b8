"""The bounds of each provider's upload and retry settings, declared once: the YAML models and
the destination resources both use them. (No SDK is imported here: the configuration of a
local export never loads a cloud SDK.)"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# S3 allows 10,000 parts; with the 64 MiB default an object may reach 625 GiB.
PartSizeMiB = Annotated[int, Field(ge=5, le=5 * 1024, description="Multipart part size; 10,000 parts max per object")]
ChunkSizeMiB = Annotated[int, Field(ge=1, le=1024, description="Resumable upload chunk size")]
RetryDeadline = Annotated[float, Field(gt=0, description="How long transient errors are retried per request")]
BlockSizeMiB = Annotated[int, Field(ge=1, le=4000, description="Staged block size; 50,000 blocks max per blob")]
MaxRetries = Annotated[int, Field(ge=0, le=20, description="Retries of a failed request (exponential backoff)")]
RetryBackoff = Annotated[float, Field(gt=0, le=300, description="Wait before the first retry; later waits grow exponentially")]
