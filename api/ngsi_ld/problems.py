"""NGSI-LD errors: ProblemDetails (RFC 7807) with the error type URIs of ETSI GS CIM 009 (clause 5.5.2)."""

from __future__ import annotations

from typing import Any

_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"

BAD_REQUEST_DATA = _ERRORS + "BadRequestData"
INVALID_REQUEST = _ERRORS + "InvalidRequest"
RESOURCE_NOT_FOUND = _ERRORS + "ResourceNotFound"
OPERATION_NOT_SUPPORTED = _ERRORS + "OperationNotSupported"
NOT_ACCEPTABLE = _ERRORS + "NotAcceptable"  # not in the spec's list; brokers (Orion-LD, Stellio) answer 406 so
TOO_COMPLEX_QUERY = _ERRORS + "TooComplexQuery"
TOO_MANY_RESULTS = _ERRORS + "TooManyResults"
INTERNAL_ERROR = _ERRORS + "InternalError"
UNAUTHORIZED = _ERRORS + "Unauthorized"  # neither: 401/403 are the hub's API keys, named alike for clients
FORBIDDEN = _ERRORS + "Forbidden"

_TITLES = {
    BAD_REQUEST_DATA: "Bad request data",
    INVALID_REQUEST: "Invalid request",
    RESOURCE_NOT_FOUND: "Resource not found",
    OPERATION_NOT_SUPPORTED: "Operation not supported",
    NOT_ACCEPTABLE: "Not acceptable",
    TOO_COMPLEX_QUERY: "Too complex query",
    TOO_MANY_RESULTS: "Too many results",
    INTERNAL_ERROR: "Internal error",
    UNAUTHORIZED: "Unauthorized",
    FORBIDDEN: "Forbidden",
}


class NgsiLdError(Exception):
    """A request NGSI-LD refuses: its HTTP status, error type URI and a sentence for the caller."""

    def __init__(self, status: int, type_uri: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.type_uri = type_uri
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"type": self.type_uri, "title": _TITLES.get(self.type_uri, "Error"), "detail": self.detail}


def bad_request(detail: str) -> NgsiLdError:
    return NgsiLdError(400, BAD_REQUEST_DATA, detail)


def not_found(detail: str) -> NgsiLdError:
    return NgsiLdError(404, RESOURCE_NOT_FOUND, detail)


def not_supported(detail: str) -> NgsiLdError:
    return NgsiLdError(501, OPERATION_NOT_SUPPORTED, detail)
