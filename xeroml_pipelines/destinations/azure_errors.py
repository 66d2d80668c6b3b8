"""Azure Blob Storage's failures in our words: its error codes that a retry cannot change, and
how an SDK exception becomes a `DestinationError` naming the container and the operation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from xeroml_pipelines.destinations.errors import Service

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError

AZURE = Service(
    "Azure Blob Storage",
    {
        "ContainerNotFound": "the container does not exist",
        "AuthenticationFailed": "bad credentials (the key or SAS token was rejected)",
        "AuthorizationFailure": "bad credentials or access denied (the key/SAS was rejected or lacks a permission)",
        "AuthorizationPermissionMismatch": "access denied: the SAS token or role lacks a permission (needs read, write, list)",
        "AuthorizationResourceTypeMismatch": "access denied: the SAS token does not cover blobs",
        "InvalidAuthenticationInfo": "bad credentials",
        "AccountIsDisabled": "the storage account is disabled",
        "InvalidResourceName": "the container name is invalid",
        "Md5Mismatch": "a block's MD5 did not match what was sent",
        "InvalidBlockList": "a staged block was lost before the commit",
    },
)


def error_code(e: HttpResponseError) -> str | None:
    code = getattr(e, "error_code", None)
    return getattr(code, "value", code)


@contextmanager
def azure_errors(where: str) -> Iterator[None]:
    """The storage SDK's exceptions inside as `DestinationError`s naming `where`."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError, ServiceResponseError

    try:
        yield
    except ClientAuthenticationError as e:
        code = error_code(e) or "AuthenticationFailed"
        raise AZURE.bad_credentials(where, f"{AZURE.causes.get(code, 'bad credentials')} [{code}]") from None
    except HttpResponseError as e:
        raise AZURE.refused(where, error_code(e), e.status_code) from None
    except (ServiceRequestError, ServiceResponseError) as e:
        raise AZURE.unreachable(where, e) from None
