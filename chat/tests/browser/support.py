"""What the browser tests share besides fixtures: actors, page checks, test files."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

PASSWORD = "pw-for-tests-1"  # accounts.tests.factories.UserFactory


@dataclass
class PageProblems:
    """What a page did that no test should accept."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self, who: str) -> None:
        assert not self.dialogs, f"{who}: a dialog opened (script ran?): {self.dialogs}"
        assert not self.errors, f"{who}: uncaught script errors: {self.errors}"


@dataclass
class Actor:
    """One person at one browser: a context (own storage, cookies) and its page."""

    name: str
    context: object
    page: object
    problems: PageProblems


def png_bytes(width: int = 96, height: int = 64) -> bytes:
    """A valid RGB PNG (top half coffee brown, bottom half cream), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    def row(rgb: tuple[int, int, int]) -> bytes:
        return b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels

    top, bottom = height // 2, height - height // 2
    pixels = row((107, 62, 38)) * top + row((251, 247, 242)) * bottom
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )
