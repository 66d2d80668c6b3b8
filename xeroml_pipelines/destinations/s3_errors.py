"""S3's failures in our words: its error codes that a retry cannot change, and how a botocore
exception becomes a `DestinationError` naming the bucket and the operation. (botocore is
imported when an error is translated: a configuration without S3 never loads it.)"""

from __future__ import annotations

from xeroml_pipelines.destinations.errors import DestinationError, Service

S3 = Service(
    "S3",
    {
        "NoSuchBucket": "the bucket does not exist",
        "AccessDenied": "access denied (check the IAM policy)",
        "AllAccessDisabled": "access to the bucket is disabled",
        "InvalidAccessKeyId": "bad credentials: the access key id is unknown",
        "SignatureDoesNotMatch": "bad credentials: the secret key does not match",
        "ExpiredToken": "bad credentials: the session token expired",
        "InvalidToken": "bad credentials: the session token is invalid",
        "InvalidBucketName": "the bucket name is invalid",
        "KMS.NotFoundException": "the KMS key does not exist",
        "KMS.AccessDeniedException": "access denied to the KMS key",
        "EntityTooLarge": "the object is larger than S3 accepts",
        "InvalidPart": "a part was lost before completion",
        "BadDigest": "a part's checksum did not match what was sent",
        "InvalidDigest": "a part's checksum did not match what was sent",
    },
)


# Another writer's conditional write came first: 412, or 409 while its request is in flight.
CONDITION_FAILED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"})


def error_code(e: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        return str(e.response.get("Error", {}).get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return type(e).__name__


def translate(e: Exception, bucket: str, operation: str, key: str) -> DestinationError:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(e, NoCredentialsError):
        return S3.bad_credentials(
            bucket, "no AWS credentials found (set the access key env vars, a profile, or an instance role)"
        )
    where = f"{bucket} ({operation} {key})"
    if isinstance(e, ClientError):
        return S3.refused(where, error_code(e), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return S3.unreachable(where, e)
