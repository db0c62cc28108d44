"""Content checks for uploaded files: the type is read from the bytes, not the name."""

from django.core.files.uploadedfile import UploadedFile

# (mime type, offset, magic bytes)
_SIGNATURES: list[tuple[str, int, bytes]] = [
    ("image/png", 0, b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", 0, b"\xff\xd8\xff"),
    ("image/gif", 0, b"GIF87a"),
    ("image/gif", 0, b"GIF89a"),
    ("application/pdf", 0, b"%PDF-"),
    ("application/zip", 0, b"PK\x03\x04"),
    ("application/zip", 0, b"PK\x05\x06"),
]


def sniff_content_type(head: bytes) -> str | None:
    """The MIME type the first bytes of a file show, or None when unknown."""
    for mime, offset, magic in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is still text.
            if exc.start < len(head) - 4:
                return None
        return "text/plain"
    return None


def read_head(upload: UploadedFile, size: int = 2048) -> bytes:
    upload.seek(0)
    head = upload.read(size)
    upload.seek(0)
    return head


def safe_filename(name: str) -> str:
    """A display name with no path, control characters or quotes; never used on disk."""
    name = (name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>;')
    return (cleaned.strip(" .") or "file")[:200]
