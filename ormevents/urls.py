"""Connection URLs as ormevents shows them: :func:`redact_url`, the one place passwords are hidden
(pure, imports nothing).

Every log line, error message, CLI output and ``repr`` that names a MongoDB, Redis or broker URL
goes through :func:`redact_url`, so a password in ``redis://:secret@host`` or
``mongodb://app:secret@db1,db2/?replicaSet=rs`` is never printed.

Example::

    >>> redact_url("redis://:s3cret@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> redact_url("mongodb://app:pw@db1,db2/shop?authSource=admin")
    'mongodb://app:***@db1,db2/shop?authSource=admin'
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SECRET_PARAMETER = re.compile(r"(?i)([?&;](?:[^=&;#]*(?:pass|secret|token|key)[^=&;#]*)=)([^&;#]*)")


def redact_url(url: Any) -> str:
    """``url`` with the password of its user part and the values of query parameters whose
    name holds ``pass``, ``secret``, ``token`` or ``key`` replaced by ``***``.

    The user name stays (it helps to tell which account is configured). A value that is not a
    URL is returned as text, with the same query redaction. ``None`` becomes ``"None"``.

    Example::

        >>> redact_url("amqp://guest:guest@rabbit//")
        'amqp://guest:***@rabbit//'
        >>> redact_url("rediss://cache:6380/0?password=x&ssl_cert_reqs=none")
        'rediss://cache:6380/0?password=***&ssl_cert_reqs=none'
    """
    text = str(url)
    scheme, separator, rest = text.partition("://")
    if separator:
        slash = rest.find("/")  # the path starts after the hosts; a password may hold '@', '?' or '#'
        at = rest.rfind("@", 0, slash if slash != -1 else len(rest))
        if at != -1:
            user, colon, _password = rest[:at].partition(":")
            rest = f"{user}:{MASK}{rest[at:]}" if colon else rest
        text = f"{scheme}{separator}{rest}"
    return _SECRET_PARAMETER.sub(lambda match: match.group(1) + MASK, text)
