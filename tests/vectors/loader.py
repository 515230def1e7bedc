"""A reader for test-vector files in the NIST CAVP text layout.

    # comment
    [PLAINTEXT LENGTH = 128]        section parameters, in force until the next group
    [IVlen = 96]                    (consecutive bracket lines form one group)

    COUNT = 0                       one record: "name = value" lines and bare words
    K = 7575da3a...                 (FAIL, ...), ended by a blank line
    C = 031f6bd7...
    FAIL

`load(path)` gives the records in file order; `vectors(*parts)` finds a file under
tests/vectors/. Values stay text: `rec.hex("K")` decodes hex, `rec.int("Len")` integers.
Nothing here is specific to one kind of vector.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

VECTORS = Path(__file__).resolve().parent


@dataclass
class Record:
    section: dict[str, str]                   # the bracket parameters in force
    fields: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    source: str = ""                          # "FILE:LINE" of the record's first line

    def __getitem__(self, name: str) -> str:
        return self.fields[name]

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def hex(self, name: str) -> bytes:
        return bytes.fromhex(self.fields[name])

    def int(self, name: str) -> int:
        return int(self.fields[name], 0)

    @property
    def fail(self) -> bool:
        """The CAVP marker of a case whose operation must fail."""
        return "FAIL" in self.flags

    @property
    def id(self) -> str:
        """A short, stable name for test ids: file, section and COUNT."""
        sec = ",".join(v if v else k for k, v in self.section.items())
        return f"{Path(self.source.split(':')[0]).stem}[{sec}]#{self.fields.get('COUNT', self.source)}"


def _parse(lines: list[str], name: str) -> Iterator[Record]:
    section: dict[str, str] = {}
    in_header = False           # True while reading a group of bracket lines
    rec: Record | None = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            if not line and rec is not None:
                yield rec
                rec = None
            continue
        if line.startswith("[") and line.endswith("]"):
            if rec is not None:
                yield rec
                rec = None
            if not in_header:
                section = {}
                in_header = True
            key, _, value = line[1:-1].partition("=")
            section[key.strip()] = value.strip()
            continue
        in_header = False
        key, eq, value = line.partition("=")
        key = key.strip()
        if rec is not None and eq and key in rec.fields:    # no blank line between records
            yield rec
            rec = None
        if rec is None:
            rec = Record(dict(section), source=f"{name}:{lineno}")
        if eq:
            rec.fields[key] = value.strip()
        else:
            rec.flags.add(line)
    if rec is not None:
        yield rec


def load(path: str | Path) -> list[Record]:
    path = Path(path)
    return list(_parse(path.read_text().splitlines(), path.name))


def vectors(*parts: str) -> Path:
    """The path of a vector file under tests/vectors/, which must exist."""
    path = VECTORS.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(path)
    return path
