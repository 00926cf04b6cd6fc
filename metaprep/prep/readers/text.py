"""GloVe text (no header) and word2vec text / fastText .vec (a ``count dim`` header line).

Each line is a word followed by ``dim`` numbers separated by single spaces. Real files bend that:
GloVe 840B has words containing spaces or non-breaking spaces (so the LAST ``dim`` fields are the
vector and the rest is the word), fastText .vec ends every line with a space, some files have
CRLF line ends or a UTF-8 BOM, and words like ``NaN``, ``null``, ``"x,`` or ``1.5`` are ordinary
words. So we never hand the word column to a CSV engine's type inference.

How it stays fast: a whole plain file goes to polars' own streaming reader (text_stream.py:
memory-mapped, parsed in parallel, batches in file order), told the exact column types and never
to fail, so every irregular row shows up as a marked row; only those rows are re-read from the
file's bytes by an exact line-by-line path, which also finds the line number for error messages.
gzipped files, ``limit`` and a small ``wanted`` take the piece path: line-aligned chunks of
``ReadOptions.chunk_bytes`` parsed by polars from bytes (text_block.py), and the lines of a chunk
it cannot take whole sorted into regular ones (back to polars) and irregular ones (the exact
path). There, with ``wanted``, the words of a chunk are found first and only the wanted lines'
numbers are parsed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np

from metaprep.errors import FormatError
from metaprep.prep.readers._io import (
    HINT_REPLACE,
    HINT_SKIP,
    LineCursor,
    LineTooLong,
    Progress,
    check_options,
    line_chunks,
    note_bad_line,
    open_binary,
    too_long,
)
from metaprep.prep.readers.base import Chunk, ReadOptions, ReadStats, Source
from metaprep.prep.readers.text_block import NeedExact, parse_block
from metaprep.prep.readers.text_layout import TEXT_FORMATS, is_float, sniff_text, strip_end
from metaprep.prep.readers.text_stream import StreamedText
from metaprep.prep.readers.text_wanted import WantedLines

__all__ = ["TEXT_FORMATS", "TextSource"]

_FULL_PARSE_SHARE = 0.4  # with ``wanted``, above this share of wanted rows parse whole chunks
# With fewer wanted words than this share of the rows, finding each line's word in Python and
# parsing only the wanted lines beats polars parsing everything (measured crossover: about 10%
# of GloVe 6B 50d's 400k rows, about 17% of a 200k x 300 file).
_STREAM_SHARE = 0.12
_SKIP_HINT = "fix or delete the line, " + HINT_SKIP


class TextSource(StreamedText, WantedLines, Source):
    """A GloVe or word2vec text file (optionally gzip-compressed)."""

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: str | None = None,
        options: ReadOptions | None = None,
    ) -> None:
        if fmt is not None and fmt not in TEXT_FORMATS:
            raise ValueError(f"fmt must be one of {TEXT_FORMATS}, not {fmt!r}")
        options = check_options(options or ReadOptions())
        self.path = Path(path)
        self.options = options
        self.stats = ReadStats()
        self._irregular = False  # whether the last piece had rows polars could not take
        self._cursor: LineCursor | None = None  # the streamed path's way back to odd lines
        self._spaced_wanted = False  # whether a wanted word contains a space
        layout = sniff_text(self.path, fmt, limit=options.limit,
                            check_count=options.on_bad_line == "error")
        self.format = layout.format
        self.has_header = layout.has_header
        self.dim = layout.dim
        self.declared_count = layout.declared_count
        self._first_line = 2 if layout.has_header else 1
        self._data_start = layout.data_start
        self._gzipped = layout.gzipped
        self._line_bytes = layout.line_bytes
        self._max_line = layout.max_line

    # --- reading -------------------------------------------------------------------------------

    def _pieces(self) -> Iterator[bytes]:
        """Line-aligned byte pieces of the data rows (the caller counts their lines)."""
        f = open_binary(self.path)
        bar = Progress(total=f.size, desc=self.path.name, enabled=self.options.progress)
        chunks = line_chunks(f, chunk_bytes=self.options.chunk_bytes, start=self._data_start,
                             max_line=self._max_line)
        line = self._first_line  # of the next piece, to name a line too long to read
        try:
            for piece in chunks:
                yield piece
                line += piece.count(b"\n")
                bar.update(f.position(), self.stats.rows_read)
        except LineTooLong as exc:
            raise too_long(self.path, line, exc.limit) from exc
        finally:
            chunks.close()
            bar.close()
            f.close()

    def _limited(self) -> Iterator[bytes]:
        """_pieces() cut so that at most ``limit`` data rows come out."""
        limit = self.options.limit
        if limit is None:
            yield from self._pieces()
            return
        for piece in self._pieces():
            while piece:
                left = limit - self.stats.rows_read
                if left <= 0:
                    return
                if piece.count(b"\n") < left:
                    yield piece
                    break
                cut = -1
                for _ in range(left):
                    cut = piece.index(b"\n", cut + 1)
                part, piece = piece[: cut + 1], piece[cut + 1 :]
                yield part
        # callers update stats.rows_read as they go, which is what stops the loop above

    # --- the Source contract -------------------------------------------------------------------
    def iter_chunks(self, wanted: Collection[str] | None = None) -> Iterator[Chunk]:
        self.stats = ReadStats()
        self._irregular = False
        seen: set[str] = set()
        # Without decoding, unwanted words are skipped by their bytes (strict UTF-8 only:
        # with "replace" a bad word decodes to something that might be wanted).
        wanted_bytes = None
        if wanted is not None and self.options.encoding_errors == "strict":
            wanted_bytes = {w.encode("utf-8") for w in wanted}
        self._spaced_wanted = wanted is not None and any(" " in w for w in wanted)
        share = 0.0  # share of the previous chunk's rows that were wanted
        line0 = self._first_line
        if self._streamable() and (
            wanted is None or len(wanted) > _STREAM_SHARE * self._rows_estimate()
        ):
            if (yield from self._stream(seen, wanted)):
                self._check_count()
                return
            # polars could not start on this file: the piece path reads all of it
        for piece in self._limited():
            if wanted is None:
                words, vectors, lines = self._parse_piece(piece, line0)
            elif share > _FULL_PARSE_SHARE:
                # most rows are wanted: parsing everything beats finding the words first
                rows = self.stats.rows_read
                words, vectors, lines = self._parse_piece(piece, line0)
                mask = [w in wanted for w in words]
                share = sum(mask) / max(1, self.stats.rows_read - rows)
                if not all(mask):
                    words = [w for w, m in zip(words, mask, strict=True) if m]
                    vectors = vectors[np.asarray(mask, dtype=bool)]
            else:
                rows = self.stats.rows_read
                words, vectors, lines = self._parse_wanted(piece, line0, wanted, wanted_bytes)
                share = len(words) / max(1, self.stats.rows_read - rows)
            line0 += lines
            keep = self._dedupe(words, seen)
            if keep is not None:
                words, vectors = [words[i] for i in keep], vectors[keep]
            if words:
                yield Chunk(words, vectors)
        self._check_count()

    def iter_words(self) -> Iterator[list[str]]:
        self.stats = ReadStats()
        seen: set[str] = set()
        if self._streamable():
            if (yield from self._stream_words(seen)):
                self._check_count()
                return
        line0 = self._first_line
        for piece in self._limited():
            lines = piece.split(b"\n")
            words = self._line_words(lines, range(line0, line0 + len(lines)))
            line0 += len(lines) - 1
            keep = self._dedupe(words, seen)
            if keep is not None:
                words = [words[i] for i in keep]
            if words:
                yield words
        self._check_count()

    def _line_words(self, lines: Sequence[bytes], line_nos: Sequence[int]) -> list[str]:
        """The words of ``lines`` (blank ones skipped, bad ones raised or skipped as the
        options say), counted in stats.rows_read; a line's numbers are not parsed unless the
        line is irregular."""
        words: list[str] = []
        for line, line_no in zip(lines, line_nos, strict=True):
            word = self._quick_word(line)
            if word is not None:
                words.append(self._decode(word, line_no))
            elif line.strip():  # irregular: the exact path finds the word (or the error)
                words.extend(self._exact([line], [line_no])[0])
            else:
                continue
            self.stats.rows_read += 1
        return words

    # --- parsing -------------------------------------------------------------------------------
    def _quick_word(self, line: bytes) -> bytes | None:
        """The word of a well-formed line (dim spaces, plus an optional trailing space and CR),
        or None when the line needs the exact path (blank, word with spaces, wrong count)."""
        sp = line.find(b" ")
        if sp <= 0 or b"\r" in line[:sp]:
            return None
        n = line.count(b" ", sp)
        if n == self.dim or (n == self.dim + 1 and line.endswith((b" ", b" \r"))):
            return line[:sp]
        return None

    def _parse_piece(self, piece: bytes, line0: int) -> tuple[list[str], np.ndarray, int]:
        """Words, vectors and the number of line ends in the piece."""
        try:
            if self._irregular:  # the last piece had odd rows: this one likely has too
                raise NeedExact
            words, vectors, lines = parse_block(piece, self.dim)
        except NeedExact:
            split = piece.split(b"\n")
            rows = [i for i, line in enumerate(split) if line.strip()]
            self.stats.rows_read += len(rows)
            return (*self._parse_lines(split, line0, rows), len(split) - 1)
        self.stats.rows_read += len(words)
        if not piece.endswith(b"\n"):
            lines = piece.count(b"\n")
        return words, vectors, lines

    def _parse_lines(
        self, lines: list[bytes], line0: int, rows: list[int]
    ) -> tuple[list[str], np.ndarray]:
        """Parse ``lines[i] for i in rows`` (in order): the regular ones through polars in
        one block, the irregular ones (words with spaces, errors) line by line. So a few odd
        rows cost a few slow lines, not a slow chunk."""
        regular: list[int] = []
        odd: list[int] = []
        for i in rows:
            (regular if self._quick_word(lines[i]) is not None else odd).append(i)
        self._irregular = bool(odd)
        fast_words: list[str] = []
        fast_vectors = np.zeros((0, self.dim), np.float32)
        if regular:
            try:
                block = b"\n".join([lines[i] for i in regular])
                fast_words, fast_vectors, _ = parse_block(block, self.dim)
            except NeedExact:  # a bad value or bad UTF-8 among them: every row line by line
                regular, odd = [], rows
        words, vectors, kept = self._exact([lines[i] for i in odd], [line0 + i for i in odd])
        if not regular:
            return words, vectors
        if not kept:
            return fast_words, fast_vectors
        # merge both back into file order
        where = np.concatenate([np.asarray(regular), np.asarray(odd)[kept]])
        order = np.argsort(where, kind="stable")
        merged = fast_words + words
        return [merged[j] for j in order], np.concatenate([fast_vectors, vectors])[order]

    def _decode(self, word: bytes, line_no: int) -> str:
        try:
            return word.decode("utf-8", errors=self.options.encoding_errors)
        except UnicodeDecodeError as exc:
            raise FormatError(
                f"the word is not valid UTF-8 (byte {word[exc.start]:#04x} at column "
                f"{exc.start + 1})",
                path=self.path, line=line_no,
                hint=HINT_REPLACE,
            ) from exc

    def _bad(self, line_no: int, reason: str, hint: str = _SKIP_HINT) -> None:
        if self.options.on_bad_line == "error":
            raise FormatError(reason, path=self.path, line=line_no, hint=hint)
        note_bad_line(self.stats, f"line {line_no}", reason)

    def _exact(
        self, lines: Sequence[bytes], line_nos: Sequence[int]
    ) -> tuple[list[str], np.ndarray, list[int]]:
        """Line by line: the last ``dim`` fields are the vector, the rest is the word. Returns
        the words, vectors and the positions in ``lines`` they came from (bad lines skipped
        under on_bad_line="skip", blank lines ignored; the caller counts rows)."""
        dim = self.dim
        words: list[str] = []
        rows: list[np.ndarray] = []
        kept: list[int] = []
        for pos, (raw, line_no) in enumerate(zip(lines, line_nos, strict=True)):
            if len(raw) > self._max_line:  # a corrupt line, not a word with many spaces
                raise too_long(self.path, line_no, self._max_line)
            line = strip_end(raw)
            if not line.strip():
                continue
            if b"\r" in line:  # no word holds one: rows joined by bare-CR line ends
                self._bad(line_no, "the line holds a carriage return (CR) before its end: are "
                          "the file's line ends bare CRs?")
                continue
            fields = line.count(b" ") + 1
            if fields < dim + 1:
                self._bad(
                    line_no,
                    f"expected a word and {dim} numbers separated by spaces, found {fields} "
                    "field(s)",
                )
                continue
            parts = line.rsplit(b" ", dim)
            if not parts[0]:
                self._bad(line_no, "the line has no word before its numbers")
                continue
            try:
                with np.errstate(over="ignore", invalid="ignore"):  # refused below, by name
                    vec = np.array(parts[1:], dtype=np.float32)
                if any(b"_" in x for x in parts[1:]):  # Python reads "1_0" as 10; we do not
                    raise ValueError
            except ValueError:
                k = next(j for j, x in enumerate(parts[1:]) if not is_float(x))
                self._bad(
                    line_no,
                    f"value {k + 1} of {dim} is not a number: {parts[k + 1][:40]!r}",
                )
                continue
            finite = np.isfinite(vec)
            if not finite.all():
                k = int(np.argmin(finite))
                value = parts[k + 1].decode()
                self._bad(line_no, f"value {k + 1} of {dim} is {value} (not finite)")
                continue
            try:
                word = parts[0].decode("utf-8", errors=self.options.encoding_errors)
            except UnicodeDecodeError as exc:
                self._bad(
                    line_no,
                    f"the word is not valid UTF-8 (byte {parts[0][exc.start]:#04x} at column "
                    f"{exc.start + 1})",
                    hint=f"{HINT_REPLACE}, {HINT_SKIP}",
                )
                continue
            words.append(word)
            rows.append(vec)
            kept.append(pos)
        vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
        return words, vectors, kept

    # --- bookkeeping ---------------------------------------------------------------------------
    def _dedupe(self, words: list[str], seen: set[str]) -> list[int] | None:
        """Indices of the words met for the first time (None: all of them); adds them to
        ``seen`` and counts the others in stats.duplicates."""
        fresh = set(words)
        if len(fresh) == len(words) and seen.isdisjoint(fresh):
            seen |= fresh
            return None
        keep = []
        for i, w in enumerate(words):
            if w in seen:
                self.stats.duplicates += 1
            else:
                seen.add(w)
                keep.append(i)
        return keep

    def _check_count(self) -> None:
        if self.declared_count is None or self.options.limit is not None:
            return
        if self.stats.rows_read != self.declared_count:
            reason = (
                f"the header declares {self.declared_count} rows but the file has "
                f"{self.stats.rows_read}"
            )
            if self.options.on_bad_line == "error":
                raise FormatError(
                    reason, path=self.path, line=1,
                    hint="the file may be truncated; otherwise fix the header's first number",
                )
            note_bad_line(self.stats, "line 1", reason)
