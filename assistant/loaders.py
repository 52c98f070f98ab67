"""Read one corpus file of any supported format into a :class:`SourceFile` of text lines.

>>> from pathlib import Path
>>> source = read_source_file(Path("corpus/000_ed0d53ce87970edb.txt"))   # doctest: +SKIP
>>> source.name, source.encoding, len(source.lines)                        # doctest: +SKIP
('000_ed0d53ce87970edb.txt', 'utf-8', 271)

Supported: .txt/.md, .docx (python-docx: paragraphs and table rows), .pdf (pypdf text layer),
.html/.htm (beautifulsoup4). Anything else, or a file that cannot be decoded, raises
:class:`UnreadableFile` carrying a reason; :func:`assistant.corpus.load_corpus` reports it in
``Corpus.skipped`` and loads the rest.

Text files: UTF-8 (with or without BOM), UTF-16/UTF-32 with a BOM, UTF-16 without a BOM, else the
legacy Chinese encodings GB18030 (a superset of GBK/GB2312) and Big5 are each tried and scored by
:func:`rare_share`, the share of their non-ASCII characters that are neither common hanzi
(GB2312 level 1 or Big5 常用字) nor punctuation: the right decoding of a notice scores ~0.1%, a Big5
file read as GB18030 (「闽鬾礥贺从干禟硄」) ~60%. The best decoding is used; when even the best
exceeds :data:`MAX_RARE_SHARE` the file is refused rather than indexed as mojibake.

NUL and other control characters: a file where they make up more than :data:`MAX_CONTROL_SHARE`
of the text is binary and refused; a few stray ones are removed and a note says how many
(``notes``, reported by :func:`assistant.corpus.report_skipped`). Messages the PDF/DOCX/HTML
libraries log or warn about while reading a file are captured and attached to that file's reason or
notes instead of reaching the terminal without a file name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import unicodedata
import warnings
from functools import lru_cache
from pathlib import Path

from assistant.types import SourceFile

TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, ".docx", ".pdf", ".html", ".htm")

# Legacy encodings tried when a text file is not UTF-8/UTF-16, in order of preference on a tie.
# GB18030 is a superset of GBK/GB2312; cp950 and big5hkscs decode the Big5 extensions plain big5 lacks.
_FALLBACK_ENCODINGS = ("gb18030", "big5", "cp950", "big5hkscs")
# A decoding whose non-ASCII characters are more than this share rare is mojibake (see rare_share).
MAX_RARE_SHARE = 0.25
# More NUL/control characters than this share of the text: binary data, not a text file.
MAX_CONTROL_SHARE = 0.01
# Candidate decodings are scored on their first this many characters (mojibake shows at once).
SCORED_CHARS = 200_000
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_LIBRARY_LOGGERS = ("pypdf", "docx", "bs4", "PIL")


class UnreadableFile(Exception):
    """A corpus file that cannot be turned into text; ``str(error)`` is the reason shown to users."""


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def read_source_file(
    path: Path,
    *,
    name: str | None = None,
    root: Path | None = None,
    notes: list[str] | None = None,
) -> SourceFile:
    """Decode ``path`` into lines (without terminators). Raises :class:`UnreadableFile`.

    ``name`` is the file's name inside the corpus directory (default: ``path.name``). With ``root``
    (the corpus directory) a path that is, or passes through, a symlink leading outside ``root`` is
    refused. ``notes`` collects what was changed or noticed while reading a file that did load
    (removed NUL characters, PDF repairs pypdf reported).
    """
    path = Path(path)
    if root is not None:
        outside = symlink_outside(path, root)
        if outside is not None:
            raise UnreadableFile(outside)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnreadableFile(f"unsupported file type {suffix or '(no extension)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if path.exists() and not path.is_file():
        raise UnreadableFile("not a regular file (a folder, pipe or device)")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UnreadableFile(f"cannot read file: {error.strerror or error}") from error
    if not raw.strip():
        raise UnreadableFile("file is empty")
    found: list[str] = []
    if suffix in TEXT_SUFFIXES:
        text, encoding = decode_text(raw, notes=found)
    else:
        with captured_library_messages() as messages:
            try:
                if suffix == ".docx":
                    text, encoding = _docx_text(raw), "docx"
                elif suffix == ".pdf":
                    text, encoding = _pdf_text(raw), "pdf"
                else:
                    text, encoding = _html_text(raw), "html"
            except UnreadableFile as error:
                if messages:
                    raise UnreadableFile(f"{error}; {_summarise(messages)}") from error
                raise
        if messages:
            found.append(_summarise(messages))
        text = _remove_controls(text, found, refuse_binary=False)
    if not text.strip():
        raise UnreadableFile("no text found (a scanned PDF without a text layer?)")
    if notes is not None:
        notes.extend(found)
    return SourceFile(
        name=name or path.name,
        lines=tuple(split_lines(text)),
        sha256=hashlib.sha256(raw).hexdigest(),
        encoding=encoding,
    )


def symlink_outside(path: Path, root: Path) -> str | None:
    """The reason to refuse ``path`` when it resolves (through a symlink of its own or of a folder on
    its way) to somewhere outside ``root``, or is a broken symlink; None when it is fine. A symlink
    inside ``root`` to a file inside ``root`` is fine."""
    path = Path(path)
    if os.path.lexists(path) and not os.path.exists(path):
        return f"broken symlink (points to {os.readlink(path) if path.is_symlink() else 'nothing'}, which does not exist)"
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real == real_root or real_root in real.parents:
        return None
    return f"symlink to {real}, outside the corpus folder {real_root}: not followed"


def split_lines(text: str) -> list[str]:
    """Lines without terminators; \\r\\n, \\r and form feeds (PDF page breaks) all end a line.

    A trailing newline does not create an empty last line, so ``wc -l`` and our numbering agree.
    """
    lines = re.split(r"\r\n|\r|\n|\f", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --- text files: encodings -----------------------------------------------------------------------

_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le", "utf-16"),
    (b"\xfe\xff", "utf-16-be", "utf-16"),
)


def decode_text(raw: bytes, *, notes: list[str] | None = None) -> tuple[str, str]:
    """Bytes of a text file -> (text, encoding name). Raises :class:`UnreadableFile` for binary data,
    invalid data after a BOM, and bytes that no encoding turns into plausible Chinese text.

    Stray NUL/control characters are removed (and counted in ``notes``); see the module docstring.
    """
    found: list[str] = []
    text, encoding = _decode(raw)
    text = _remove_controls(text, found, refuse_binary=True)
    if notes is not None:
        notes.extend(found)
    return text, encoding


def _decode(raw: bytes) -> tuple[str, str]:
    for bom, codec, name in _BOMS:
        if raw.startswith(bom):
            try:
                return raw[len(bom):].decode(codec), name
            except UnicodeDecodeError as error:
                raise UnreadableFile(f"starts with a {name.upper()} byte-order mark but is not valid {name.upper()} "
                                     f"(byte {error.start + len(bom)})") from None
    if b"\x00" in raw and len(raw) % 2 == 0:
        # UTF-16 without a BOM: its ASCII characters (newlines, digits) carry NUL bytes
        candidates = _score_candidates(raw, ("utf-16-le", "utf-16-be"))
        if candidates and candidates[0][0] <= MAX_RARE_SHARE and _control_share(candidates[0][2]) <= MAX_CONTROL_SHARE:
            return candidates[0][2], candidates[0][1]
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _control_share(raw.decode("latin-1")) > MAX_CONTROL_SHARE:
        raise UnreadableFile("binary data (NUL or control bytes), not a text file")
    candidates = _score_candidates(raw, _FALLBACK_ENCODINGS)
    if candidates and candidates[0][0] <= MAX_RARE_SHARE:
        return candidates[0][2], candidates[0][1]
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is not None:
        guess = str(best)
        if rare_share(guess) <= MAX_RARE_SHARE and _control_share(guess) <= MAX_CONTROL_SHARE:
            return guess, best.encoding
    if candidates:
        share, encoding, _ = candidates[0]
        raise UnreadableFile(
            f"cannot decode text: not UTF-8 or UTF-16, and read as {encoding} (the likeliest of GB18030/GBK and Big5) "
            f"{share:.0%} of its characters are rare or unassigned: that is mojibake, so the file is not indexed; "
            "save it as UTF-8"
        )
    raise UnreadableFile("cannot decode text: not UTF-8, UTF-16, GB18030/GBK or Big5; save it as UTF-8")


def _score_candidates(raw: bytes, encodings) -> list[tuple[float, str, str]]:
    """(rare share, encoding, text) of every encoding that decodes ``raw`` strictly, best first
    (ties keep the order of ``encodings``)."""
    scored = []
    for order, encoding in enumerate(encodings):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        scored.append((rare_share(text[:SCORED_CHARS]), order, encoding, text))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [(share, encoding, text) for share, _, encoding, text in scored]


def rare_share(text: str) -> float:
    """Share of the non-ASCII, non-space characters of ``text`` that are not common: common are
    the hanzi of GB2312 level 1 (3,755 characters) and of Big5's 常用字 (5,401), CJK and general
    punctuation, full-width forms, and other punctuation, symbols and numbers. Rare are every
    other letter or hanzi, private-use and unassigned code points (where mojibake lands)."""
    total = rare = 0
    for ch in text:
        if ch < "\x80" or ch.isspace():
            continue
        total += 1
        if not _is_common(ch):
            rare += 1
    return rare / total if total else 0.0


@lru_cache(maxsize=65536)
def _is_common(ch: str) -> bool:
    code = ord(ch)
    if 0x4E00 <= code <= 0x9FFF:
        try:
            gb = ch.encode("gb2312")
            if 0xB0 <= gb[0] <= 0xD7:
                return True
        except UnicodeEncodeError:
            pass
        try:
            big5 = ch.encode("big5")
            return 0xA440 <= (big5[0] << 8 | big5[1]) <= 0xC67E
        except UnicodeEncodeError:
            return False
    if 0x3000 <= code <= 0x303F or 0xFF01 <= code <= 0xFF64 or 0x2000 <= code <= 0x206F or 0xFE30 <= code <= 0xFE4F:
        return True
    return unicodedata.category(ch)[0] in "PSN" or unicodedata.category(ch) == "Zs"


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    return len(_CONTROLS.findall(text)) / len(text)


def _remove_controls(text: str, notes: list[str], *, refuse_binary: bool) -> str:
    """Text without NUL/control characters; refuse (binary) when they are more than a stray few."""
    found = _CONTROLS.findall(text)
    if not found:
        return text
    if refuse_binary and len(found) / len(text) > MAX_CONTROL_SHARE:
        raise UnreadableFile(f"binary data ({len(found)} NUL or control characters in {len(text)}), not a text file")
    nuls = found.count("\x00")
    others = len(found) - nuls
    parts = []
    if nuls:
        parts.append(f"{nuls} NUL character{'s' if nuls != 1 else ''}")
    if others:
        parts.append(f"{others} other control character{'s' if others != 1 else ''}")
    notes.append(f"removed {' and '.join(parts)}")
    return _CONTROLS.sub("", text)


# --- other formats -------------------------------------------------------------------------------

class _Collect(logging.Handler):
    def __init__(self, messages: list[str]):
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(f"{record.name.split('.')[0]}: {record.getMessage()}")
        except Exception:  # a message that cannot be formatted is still not printed
            self.messages.append(f"{record.name.split('.')[0]}: {record.msg}")


@contextlib.contextmanager
def captured_library_messages():
    """Collect what pypdf/python-docx/bs4 log or warn while one file is read (a list of strings)
    instead of letting it reach stderr without the file's name."""
    messages: list[str] = []
    handler = _Collect(messages)
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    saved = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
        messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        for logger, (propagate, level) in zip(loggers, saved):
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)


def _summarise(messages: list[str], limit: int = 3) -> str:
    unique = list(dict.fromkeys(messages))
    shown = "; ".join(unique[:limit])
    more = f" (+{len(unique) - limit} more)" if len(unique) > limit else ""
    return f"library messages: {shown}{more}"


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
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
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
