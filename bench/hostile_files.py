"""Hostile files, made at run time (none is committed): a DOCX decompression bomb, a PDF of many pages, and a
multipart body of any size streamed without holding it in memory.

Used by `bench/abuse_bench.py` and by the tests (at small sizes). Pure Python; imports nothing from the project.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_bomb(inflated_bytes: int = 1024**3) -> bytes:
    """A valid DOCX whose `word/document.xml` inflates to about `inflated_bytes` of short paragraphs (what Word
    and python-docx read without complaint, unlike one huge text node, which lxml refuses): ~1.5 MB on disk
    for 1 GB inflated."""
    head = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}"><w:body>'.encode()
    tail = b"</w:body></w:document>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(head)
            paragraph = b"<w:p><w:r><w:t>" + b"bomb " * 20 + b"</w:t></w:r></w:p>"
            per_block = 1024 * 1024 // len(paragraph)
            left = max(0, inflated_bytes - len(head) - len(tail)) // len(paragraph)  # whole paragraphs only
            while left > 0:
                count = min(left, per_block)
                part.write(paragraph * count)
                left -= count
            part.write(tail)
    return out.getvalue()


def many_pages_pdf(pages: int = 20_000, text: str = "Page text") -> bytes:
    """A valid PDF of `pages` pages sharing one small content stream: ~2 MB for 20,000 pages."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, filled in below
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    first_page = len(objects) + 1
    kids = b" ".join(b"%d 0 R" % (first_page + i) for i in range(pages))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages)
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
    objects.extend([page] * pages)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def multipart_stream(total_bytes: int, boundary: str = "zz", chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A `multipart/form-data` body of `total_bytes` with one file part, produced a chunk at a time."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    yield head
    left = max(0, total_bytes - len(head) - len(tail))
    block = b"x" * chunk
    while left > 0:
        piece = block[: min(left, chunk)]
        yield piece
        left -= len(piece)
    yield tail
