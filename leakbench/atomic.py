"""Files that appear whole or not at all: what a later run trusts is never half-written.

A writer fills a temporary file beside the target (same directory, so the same file system) and
`os.replace` puts it in place only once the writing returned; on an error the temporary file is
removed and the target is untouched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write; on a clean exit it replaces `path`, on an error it is removed.

        with replacing(target) as temporary:
            temporary.write_text(text)
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: Path, data: str | bytes) -> None:
    """`path` holds `data` (text is written as UTF-8), or keeps what it held before."""
    with replacing(path) as temporary:
        if isinstance(data, str):
            temporary.write_text(data, encoding="utf-8")
        else:
            temporary.write_bytes(data)
