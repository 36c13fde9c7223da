"""Checks on values that cross a trust boundary before a job starts: the base URL the token is
sent to, names that go into request paths and bodies, the token's own text, and the result
folder. Each raises :class:`ConfigError` with a message that names the option and never
repeats a secret.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ConfigError

__all__ = [
    "check_base_url",
    "check_object_type",
    "check_out_dir",
    "check_property_name",
    "check_token_text",
    "cleartext_warning",
    "loose_token_file_warning",
    "origin",
    "same_base_url",
]

# HubSpot addresses an object type by name (``tickets``, custom ``p_my_object``) or by type id
# (``0-5`` for tickets, ``2-123`` for a custom object): docs/hubspot-api.md section 1. Nothing else
# may reach the path, where ``..``, ``%2e%2e``, ``?`` or ``#`` would change what is called.
_OBJECT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[0-9]+-[0-9]+")
# HubSpot's internal property names are lower-case letters, digits and underscores. Upper case
# and ``-`` are let through for older portals [I]; anything that could change the meaning of a
# query parameter or a path (``?&#/%``, dots, spaces, quotes) is not.
_PROPERTY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


def check_base_url(url: str, *, option: str = "base_url") -> None:
    """The token goes to this URL, so it must be a plain ``http(s)://host[:port][/path]``.

    Credentials (``user:pass@``), a query string or a fragment are refused without echoing
    the URL, which may hold a password or an API key.
    """
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        raise ConfigError(f"{option} contains spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # reading the port is what finds "host:notaport" or "host:99999"
    except ValueError:
        raise ConfigError(f"{option} is not a valid URL (check the host and port)") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{option} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{option} must not carry a user name or password (user:pass@host); the token "
            "comes from HUBSPOT_ACCESS_TOKEN or --token-file"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConfigError(
            f"{option} must not have a query string or fragment (?... or #...): bulkops adds "
            "paths and parameters itself"
        )
    if not parts.hostname:
        raise ConfigError(f"{option} names no host")


def origin(url: str) -> str:
    """``host[:port]`` of a URL, without any user name or password: what the CLI names."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return "(an unreadable URL)"
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


def cleartext_warning(url: str) -> str | None:
    """A warning when the token would cross the network unencrypted (http:// to a host that is
    not this machine), else None."""
    parts = urlsplit(url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return None
    return f"bulkops: warning: {origin(url)} is plain http: the token would travel unencrypted"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def same_base_url(a: str, b: str) -> bool:
    """Whether two base URLs reach the same place (scheme, host, port and path)."""

    def key(url: str) -> tuple[str, str, int | None, str] | None:
        try:
            parts = urlsplit(url.strip())
            default = {"http": 80, "https": 443}.get(parts.scheme.lower())
            port = parts.port or default
        except ValueError:
            return None
        host = (parts.hostname or "").lower()
        return parts.scheme.lower(), host, port, parts.path.rstrip("/")

    ka = key(a)
    return ka is not None and ka == key(b)


def check_object_type(value: str, *, option: str = "object_type (--object)") -> None:
    if not _OBJECT_TYPE.fullmatch(value):
        raise ConfigError(
            f"{option} {value!r} is not an object type: give a name such as tickets or "
            "p_my_object, or a type id such as 0-5 or 2-123"
        )


def check_property_name(value: str, *, option: str) -> None:
    if not _PROPERTY_NAME.fullmatch(value):
        raise ConfigError(
            f"{option} {value!r} is not a property name: use its internal name "
            "(letters, digits, underscores), e.g. hs_ticket_priority"
        )


def check_token_text(token: str, *, source: str) -> None:
    """A token goes into a header: one run of visible ASCII. A line break pasted into the
    middle, a NUL, a space or a non-ASCII character would make aiohttp raise on the header
    (or, worse, split it), so refuse it here, naming where the token came from, not what it is.
    """
    for position, char in enumerate(token, start=1):
        if not "!" <= char <= "~":
            what = (
                "a line break"
                if char in "\r\n"
                else "a space"
                if char.isspace()
                else "a control character"
                if not char.isprintable()
                else "a non-ASCII character"
            )
            raise ConfigError(
                f"the token from {source} contains {what} at character {position}; "
                "a token is one line of plain ASCII (was it pasted with a line break?)"
            )


def loose_token_file_warning(path: str) -> str | None:
    """A warning when the token file can be read by group or others, else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # reading it will report the problem
    if stat.S_IMODE(mode) & 0o077:
        return (
            f"bulkops: warning: --token-file {path} can be read by other users "
            f"(mode {stat.S_IMODE(mode):o}); chmod 600 {path}"
        )
    return None


def check_out_dir(path: Path) -> None:
    """Refuse a result folder the job could not write, before any request is sent.

    Probes by creating (and removing) a file in ``path`` or, when it does not exist yet, in
    its nearest existing parent: permission bits do not tell (root, ACLs, a read-only mount).
    """
    option = f"--out {path}"
    try:
        existing = path
        # Bounded by the number of parts of the path.
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            what = f"{option} is" if existing == path else f"{option}: {existing} is"
            raise ConfigError(f"{what} a file, not a folder")
        fd, probe = tempfile.mkstemp(prefix=".bulkops-probe-", dir=existing)
    except OSError as exc:
        raise ConfigError(f"{option} cannot be written: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
