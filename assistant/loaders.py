"""Read one corpus file of any supported format into a :class:`SourceFile` of text lines.

>>> from pathlib import Path
>>> source = read_source_file(Path("corpus/000_ed0d53ce87970edb.txt"))   # doctest: +SKIP
>>> source.name, source.encoding, len(source.lines)                        # doctest: +SKIP
('000_ed0d53ce87970edb.txt', 'utf-8', 271)

Supported: .txt/.md (UTF-8, else GB18030/GBK/Big5 detected), .docx (python-docx: paragraphs and
table rows), .pdf (pypdf text layer), .html/.htm (beautifulsoup4). Anything else, or a file that
cannot be decoded, raises :class:`UnreadableFile` carrying a reason; :func:`assistant.corpus.load_corpus`
reports it in ``Corpus.skipped`` and loads the rest.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from assistant.types import SourceFile

TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, ".docx", ".pdf", ".html", ".htm")

# Encodings tried in order when a text file is not UTF-8. GB18030 is a superset of GBK/GB2312,
# so trying it first decodes both; Big5 covers traditional-character files from Taiwan/Hong Kong.
_FALLBACK_ENCODINGS = ("gb18030", "big5")


class UnreadableFile(Exception):
    """A corpus file that cannot be turned into text; ``str(error)`` is the reason shown to users."""


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_source_file(path: Path, *, name: str | None = None) -> SourceFile:
    """Decode ``path`` into lines (without terminators). Raises :class:`UnreadableFile`.

    ``name`` is the file's name inside the corpus directory (default: ``path.name``).
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type {suffix or '(no extension)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UnreadableFile(f"cannot read file: {error.strerror or error}") from error
    if not raw.strip():
        raise UnreadableFile("file is empty")
    if suffix in TEXT_SUFFIXES:
        text, encoding = decode_text(raw)
    elif suffix == ".docx":
        text, encoding = _docx_text(raw), "docx"
    elif suffix == ".pdf":
        text, encoding = _pdf_text(raw), "pdf"
    else:
        text, encoding = _html_text(raw), "html"
    if not text.strip():
        raise UnreadableFile("no text found (a scanned PDF without a text layer?)")
    return SourceFile(
        name=name or path.name,
        lines=tuple(split_lines(text)),
        sha256=hashlib.sha256(raw).hexdigest(),
        encoding=encoding,
    )


def split_lines(text: str) -> list[str]:
    """Lines without terminators; \\r\\n, \\r and form feeds (PDF page breaks) all end a line.

    A trailing newline does not create an empty last line, so ``wc -l`` and our numbering agree.
    """
    lines = re.split(r"\r\n|\r|\n|\f", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def decode_text(raw: bytes) -> tuple[str, str]:
    """Bytes of a text file -> (text, encoding name). Raises :class:`UnreadableFile` for binary data."""
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("binary data (NUL bytes), not a text file")
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for encoding in _FALLBACK_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_like_text(text):
            return text, encoding
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is not None and _looks_like_text(str(best)):
        return str(best), best.encoding
    raise UnreadableFile("cannot decode text: not UTF-8, GB18030/GBK or Big5")


def _looks_like_text(text: str) -> bool:
    """Reject decodings full of control characters (binary data that happened to decode)."""
    if not text:
        return False
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f")
    return controls / len(text) < 0.01


def _docx_text(raw: bytes) -> str:
    try:
        import docx
    except ImportError as error:  # pragma: no cover - dependency is declared
        raise UnreadableFile("python-docx is not installed (pip install python-docx)") from error
    try:
        document = docx.Document(io.BytesIO(raw))
    except Exception as error:  # python-docx raises several types for damaged archives
        raise UnreadableFile(f"not a valid .docx file ({type(error).__name__})") from error
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            cells = []
            for cell in row.cells:
                if cell.text not in cells:  # merged cells repeat their text
                    cells.append(cell.text)
            lines.append("\t".join(cells))
    return "\n".join(lines)


def _pdf_text(raw: bytes) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as error:  # pragma: no cover - dependency is declared
        raise UnreadableFile("pypdf is not installed (pip install pypdf)") from error
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as error:
                raise UnreadableFile("encrypted PDF (needs a password)") from error
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise UnreadableFile(f"not a readable PDF ({type(error).__name__}: {error})") from error
    return "\n".join(pages)


def _html_text(raw: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript", "head"]):
        tag.decompose()
    # Block elements end lines; inline elements (span, a, b) stay inside their line.
    for tag in soup.find_all(["br"]):
        tag.replace_with("\n")
    blocks = soup.find_all(["p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "title"])
    for tag in blocks:
        tag.insert_after("\n")
    text = soup.get_text()
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())
