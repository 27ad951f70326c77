"""Is an exception a fault of the file being processed, or of the infrastructure around it?

A stage's broad ``except Exception`` quarantines the file it was working on. That is right for a
video the decoder chokes on and wrong for an S3 timeout, a reset connection, an HTTP 5xx or a full
disk: those say nothing about the file, and quarantining would lose a good video for good. Such
faults must raise so that the step's retry policy (and, after that, a failed run that a plain
re-run resumes) deals with them::

    except Exception as e:
        reraise_if_infrastructure(e)
        quarantine(...)

The test looks at the exception and its causes (``__cause__`` / ``__context__``): network and
timeout errors, S3/HTTP throttling and 5xx, and a disk that is full or read-only are
infrastructure. FFmpeg's own errors (PyAV) are about the file: PyAV only ever reads local files
here, and some of its errno values (EAGAIN, EIO) would otherwise look like the network. A time
limit on decoding one file must raise ``InputRejected`` (``DecodeTimeout``), not the builtin
``TimeoutError``, which is read as the infrastructure's.
"""

from __future__ import annotations

import errno
import re

# errno values that describe the machine or the network, never the content of a file.
_INFRA_ERRNOS = frozenset(
    getattr(errno, n)
    for n in (
        "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH",
        "ENETDOWN", "ENOSPC", "EDQUOT", "EROFS", "EMFILE", "ENFILE", "ESTALE",
    )
    if hasattr(errno, n)
)
# Messages of the AWS SDK inside pyarrow's S3 filesystem (it raises a bare OSError) and of HTTP
# clients: network, timeouts, throttling and server errors.
_INFRA_TEXT = re.compile(
    r"AWS Error (NETWORK_CONNECTION|SLOW_DOWN|SERVICE_UNAVAILABLE|INTERNAL_FAILURE|THROTTLING|REQUEST_TIMEOUT)"
    r"|curlCode: ?\d+|Timeout was reached|Connection (refused|reset|timed out|aborted)"
    r"|HTTP response code: ?5\d\d|\bHTTP 5\d\d\b|\b(503 )?Service Unavailable\b|SlowDown|RequestTimeout"
    r"|Could not connect to the endpoint|Read timeout on endpoint|Connect timeout on endpoint",
    re.IGNORECASE,
)
_INFRA_TYPE_NAMES = frozenset(
    {
        # botocore / urllib3 / httpx / requests, named so that none of them must be importable here
        "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
        "ProxyConnectionError", "NoCredentialsError", "PartialCredentialsError", "ResponseStreamingError",
        "NewConnectionError", "ProtocolError", "TimeoutException", "TransportError", "RemoteProtocolError",
        "ConnectError", "ReadTimeout", "WriteTimeout", "PoolTimeout", "ConnectTimeout",
    }
)


class InfrastructureError(RuntimeError):
    """Raised for a fault of the infrastructure that a caller must not mistake for a bad file."""


def _is_ffmpeg_error(exc: BaseException) -> bool:
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        return False
    return isinstance(exc, av.FFmpegError)


def _one(exc: BaseException) -> bool:
    # A broken pipe here is a local worker (a decoder subprocess) that died on its file; network
    # clients report a dropped connection as their own errors, matched below.
    if _is_ffmpeg_error(exc) or isinstance(exc, BrokenPipeError):
        return False
    if isinstance(exc, InfrastructureError | TimeoutError | ConnectionError):
        return True
    names = {t.__name__ for t in type(exc).__mro__}
    if names & _INFRA_TYPE_NAMES:
        return True
    # botocore's ClientError: throttling and 5xx are the service's problem; 4xx are not.
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        code = str((response.get("Error") or {}).get("Code", ""))
        if status >= 500 or status == 429 or code in ("SlowDown", "Throttling", "RequestTimeout", "InternalError"):
            return True
    status = getattr(getattr(exc, "response", None), "status_code", None)  # httpx / requests
    if isinstance(status, int) and (status >= 500 or status == 429):
        return True
    if isinstance(exc, OSError) and exc.errno in _INFRA_ERRNOS:
        return True
    return isinstance(exc, OSError) and bool(_INFRA_TEXT.search(str(exc)))


def is_infrastructure_fault(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception that caused it) is a fault of the infrastructure."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _one(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def reraise_if_infrastructure(exc: BaseException) -> None:
    """Re-raise ``exc`` when it is a fault of the infrastructure; return (to quarantine) otherwise."""
    if is_infrastructure_fault(exc):
        raise exc
