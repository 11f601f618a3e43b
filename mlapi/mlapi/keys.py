"""API keys: the key file's format, reading it, and making new keys (``python -m mlapi.keys``).

The file holds one key a line, ``SCOPE[,SCOPE...] sha256:HEX [NAME]``; blank lines and lines
starting with ``#`` are ignored. Only the key's sha256 is stored. A key is 256 random bits, so
its hash is as hard to reverse as the key is to guess: a slow password hash (bcrypt, argon2)
protects secrets people choose, and here it would only cost CPU on every request.
"""

import argparse
import hashlib
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: What each scope allows: the route that needs it.
SCOPES: Final = {
    "predict": "POST /api/v1/predict",
    "feedback": "POST /api/v1/feedback",
    "read": "GET /api/v1/predictions/{prediction_id}",
    "metrics": "GET /metrics",
}
#: The scopes of the client key that ``init`` makes: everything but the metrics.
CLIENT_SCOPES: Final = ("predict", "feedback", "read")
KEY_PREFIX: Final = "mlapi_"
_HASH = re.compile(r"sha256:([0-9a-f]{64})")
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class KeyFileError(ValueError):
    """The key file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class ApiKey:
    """One key of the file: its hash, what it may do, and the name it is logged under."""

    digest: bytes
    scopes: frozenset[str]
    name: str


def digest(key: str) -> bytes:
    """The sha256 of a key, as stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def new_key() -> str:
    """A new key: 256 random bits, URL-safe, with a prefix that secret scanners can match."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_line(key: str, scopes: Sequence[str], name: str) -> str:
    """The key file's line for a key."""
    return f"{','.join(scopes)} sha256:{digest(key).hex()} {name}"


def parse_scopes(text: str) -> list[str]:
    """Scopes given as ``a,b``; unknown ones are an error naming the known ones."""
    scopes = [s.strip() for s in text.split(",")]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise KeyFileError(
            f"unknown scope(s) {', '.join(map(repr, unknown))}; scopes are {', '.join(SCOPES)}"
        )
    return scopes


def parse_keys(text: str) -> list[ApiKey]:
    """The keys of a key file's text; a KeyFileError names the first bad line."""
    keys: list[ApiKey] = []
    seen: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(_parse_line(line, seen))
        except KeyFileError as exc:
            # The line itself is not shown: a key pasted by mistake would be.
            raise KeyFileError(f"line {number}: {exc}") from None
        seen.add(keys[-1].digest)
    return keys


def _parse_line(line: str, seen: set[bytes]) -> ApiKey:
    fields = line.split()
    if len(fields) not in (2, 3):
        raise KeyFileError("expected SCOPE[,SCOPE...] sha256:HEX [NAME]")
    scopes, hashed = fields[0], fields[1]
    matched = _HASH.fullmatch(hashed)
    if matched is None:
        raise KeyFileError(
            "the second field must be sha256: and 64 lowercase hex digits, the key's hash "
            "(python -m mlapi.keys new prints the line), never the key itself"
        )
    key_digest = bytes.fromhex(matched[1])
    if key_digest in seen:
        raise KeyFileError("the same key is on an earlier line")
    parsed = frozenset(parse_scopes(scopes))
    # Unnamed: named by the start of its hash, which says nothing of the key.
    name = fields[2] if len(fields) == 3 else f"key-{matched[1][:8]}"
    if _NAME.fullmatch(name) is None:
        raise KeyFileError("a name is 1-64 letters, digits or . _ @ -")
    return ApiKey(key_digest, parsed, name)


def load_keys(path: Path) -> list[ApiKey]:
    """The keys of the file at path, at least one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read {path}: {exc}") from exc
    return read_keys(text, str(path))


def read_keys(text: str, where: str) -> list[ApiKey]:
    """The keys of a key file's text, at least one; ``where`` names it in the error."""
    keys = parse_keys(text)
    if not keys:
        raise KeyFileError(
            f"{where} holds no key; add one (python -m mlapi.keys new --scopes predict prints "
            "its line)"
        )
    return keys


def _new(args: argparse.Namespace) -> int:
    scopes = parse_scopes(args.scopes)
    name = args.name
    if _NAME.fullmatch(name) is None:
        raise KeyFileError("a name is 1-64 letters, digits or . _ @ -")
    key = new_key()
    if args.key_file is None:
        print(f"key (give it to the client; only its hash is kept): {key}", file=sys.stderr)
    else:
        # Created for the owner only, never over an existing file.
        with open(args.key_file, "x", encoding="utf-8", opener=_private) as out:
            out.write(key + "\n")
    print(key_line(key, scopes, name))
    return 0


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _write(path: Path, text: str, mode: int) -> None:
    """Write a file whole or not at all: a start interrupted half-way is redone."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with open(partial, "x", encoding="utf-8", opener=lambda p, f: os.open(p, f, mode)) as out:
        out.write(text)
    partial.replace(path)


def _init(args: argparse.Namespace) -> int:
    keys_file = Path(args.keys_file)
    if keys_file.exists():
        print(f"{keys_file} exists; no key made", file=sys.stderr)
        return 0
    client, scraper = new_key(), new_key()
    _write(Path(args.client_key), client + "\n", 0o600)
    # Read by Prometheus, another container's user: the volume it is on is its protection.
    _write(Path(args.metrics_key), scraper + "\n", 0o644)
    lines = [
        "# Made by python -m mlapi.keys init; one key a line: SCOPES sha256:HASH NAME",
        key_line(client, list(CLIENT_SCOPES), "client"),
        key_line(scraper, ["metrics"], "prometheus"),
    ]
    # Last: until this file exists, the next start makes both keys again.
    _write(keys_file, "\n".join(lines) + "\n", 0o600)
    print(
        f"made a client key in {args.client_key} and a metrics key in {args.metrics_key}; "
        f"their hashes are in {keys_file}",
        file=sys.stderr,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    for key in load_keys(Path(args.file)):
        print(f"{key.name}: {','.join(sorted(key.scopes))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mlapi.keys``: make a key, or check a key file."""
    parser = argparse.ArgumentParser(prog="python -m mlapi.keys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser(
        "new",
        help="make a key; print its line for the key file on stdout, the key on stderr",
    )
    new.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(SCOPES)}")
    new.add_argument("--name", default="key", help="the name logged for its requests")
    new.add_argument("--key-file", help="write the key to this new file instead of stderr")
    check = commands.add_parser("check", help="read a key file; list its keys' names and scopes")
    check.add_argument("file")
    init = commands.add_parser(
        "init",
        help="unless KEYS_FILE exists: make a client key (predict, feedback, read) and a "
        "metrics key, each written to its file, and KEYS_FILE with their hashes",
    )
    init.add_argument("keys_file", metavar="KEYS_FILE")
    init.add_argument("--client-key", required=True, help="the file for the client key")
    init.add_argument("--metrics-key", required=True, help="the file for the metrics key")
    args = parser.parse_args(argv)
    run = {"new": _new, "check": _check, "init": _init}[args.command]
    try:
        return run(args)
    except (KeyFileError, OSError) as exc:
        print(f"python -m mlapi.keys: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
