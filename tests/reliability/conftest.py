"""Shared pieces of the hostile-input tests.

* Pristine simulated folders of every format (built once per session) and
  ``fresh_copy(src)``, a throw-away copy per hypothesis example.
* ``mutate`` / ``corrupt_cell``: draw a corrupted version of a file's bytes
  (truncation, flipped/inserted/overwritten bytes, random bytes, empty file,
  wrong encoding) or of one CSV cell (NaN, inf, -1, 1e30, text, non-UTF-8 bytes).
* ``expect_clean(call, file=..., row=...)``: the one acceptable outcome — the
  call returns, or raises a one-line :class:`DataError` naming ``file`` (and
  ``row N`` where given). Any other exception fails the test with its traceback.
* ``cases``: counts the examples a fuzz test ran; the counts are printed in the
  terminal summary and, when ``$ECHOSSL_FUZZ_REPORT`` is set, written there as JSON.
* The hypothesis profile ``echossl-fuzz``: ``$ECHOSSL_FUZZ_EXAMPLES`` examples per
  test (random, for long exploratory runs), else 100 derandomized ones (reproducible CI).
* A fuzz test fails if it raised the process's peak memory by more than 1 GiB
  (a header that makes a reader allocate its claimed size would).
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from echossl.errors import DataError

_EXAMPLES = int(os.environ.get("ECHOSSL_FUZZ_EXAMPLES", "0") or 0)
settings.register_profile(
    "echossl-fuzz",
    max_examples=_EXAMPLES or 100,
    deadline=None,
    derandomize=not _EXAMPLES,
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)

MEMORY_BUDGET_KB = 1024 * 1024  # ru_maxrss is in KiB on Linux


# --------------------------------------------------------------------------- #
# pristine folders and per-example copies
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="session")
def pristine(tmp_path_factory):
    """Builds (once) and returns a simulated folder by format name: echonet, camus, mrjet, sweep."""
    built: dict[str, Path] = {}

    def get(fmt: str) -> Path:
        if fmt not in built:
            out = tmp_path_factory.mktemp(f"pristine-{fmt}")
            if fmt == "echonet":
                from echossl.simulate.echonet import simulate_echonet

                simulate_echonet(out, 3, seed=5, size=32, style="easy", workers=1, progress=False)
            elif fmt == "camus":
                from echossl.simulate.camus import simulate_camus

                simulate_camus(out, 2, seed=5, progress=False)
            elif fmt == "mrjet":
                from echossl.simulate.mrjet import simulate_mrjet

                simulate_mrjet(out, 3, seed=5, size=48, progress=False)
            elif fmt == "sweep":
                from echossl.simulate.sweep import simulate_sweep

                simulate_sweep(out, 2, seed=5, size=32, fps=5, seconds=10)
            else:
                raise ValueError(fmt)
            built[fmt] = out
        return built[fmt]

    return get


@pytest.fixture(scope="session")
def fresh_copy(tmp_path_factory):
    """``with fresh_copy(src) as root:`` a private copy of ``src``, deleted afterwards.

    Session-scoped so hypothesis examples can share it; every call is a new folder,
    so the readers' memos (keyed on path, size and mtime) never mix examples.
    """
    base = tmp_path_factory.mktemp("work")

    @contextmanager
    def copy(src: Path):
        work = Path(tempfile.mkdtemp(dir=base))
        root = work / "data"
        shutil.copytree(src, root, symlinks=True)
        try:
            yield root
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return copy


# --------------------------------------------------------------------------- #
# corruptions
# --------------------------------------------------------------------------- #

MUTATIONS = ("truncate", "flip", "insert", "overwrite", "random", "empty", "utf16", "latin1")


def _offset(data, n: int, label: str) -> int:
    """An offset in ``[0, n)``, half the time in the first 512 bytes (headers live there)."""
    return data.draw(st.one_of(st.integers(0, max(0, min(n, 512) - 1)), st.integers(0, max(0, n - 1))),
                     label=label)


def mutate(data, raw: bytes) -> bytes:
    """A corrupted version of ``raw`` drawn with hypothesis' ``st.data()`` object ``data``."""
    kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    n = len(raw)
    if kind == "empty" or n == 0:
        return b""
    if kind == "truncate":
        return raw[: data.draw(st.integers(0, n - 1), label="keep")]
    if kind == "random":
        return data.draw(st.binary(min_size=1, max_size=4096), label="bytes")
    if kind == "utf16":  # a text file saved in another encoding
        return raw.decode("latin-1").encode("utf-16")
    if kind == "latin1":  # some bytes >= 0x80 that are not valid UTF-8
        at = _offset(data, n, "at")
        return raw[:at] + "é°µ".encode("latin-1") + raw[at:]
    if kind == "insert":
        at = _offset(data, n, "at")
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=64), label="inserted") + raw[at:]
    if kind == "overwrite":
        at = _offset(data, n, "at")
        junk = data.draw(st.binary(min_size=1, max_size=64), label="junk")
        return raw[:at] + junk + raw[at + len(junk):]
    out = bytearray(raw)  # flip
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        out[_offset(data, n, "pos")] ^= data.draw(st.integers(1, 255), label="xor")
    return bytes(out)


# Cell values that real files get wrong: missing, non-finite, negative, absurdly
# large, text in a number column, separators and quotes, control characters.
HOSTILE_CELLS = ["", " ", "nan", "NaN", "NA", "inf", "-inf", "Infinity", "-1", "0", "-0", "1e30", "-1e30",
                 "1e309", "9" * 40, "2147483648", "1.5", "abc", "0x1F", "1,5", "\"", "a\nb", "\x00", "\t",
                 "../x", "/etc/passwd", "TRAIN", "x" * 300]
CELL_VALUES = st.one_of(
    st.sampled_from(HOSTILE_CELLS).map(str.encode),
    st.binary(max_size=16),  # mostly not UTF-8
    st.text(max_size=16).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


def _csv_cell(value: bytes) -> bytes:
    """Quote a cell as a CSV writer would, so the corruption stays inside one cell."""
    if any(ch in value for ch in (b",", b'"', b"\n", b"\r")):
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


def corrupt_cell(data, raw: bytes, columns: tuple[str, ...] | None = None) -> tuple[bytes, int, str]:
    """Replace one data cell of a CSV (optionally only in ``columns``).

    Returns:
        ``(new bytes, 1-based data row, column name)``.
    """
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    header, body = rows[0], rows[1:]
    i = data.draw(st.integers(1, len(body)), label="row")
    names = [c for c in header if columns is None or c in columns]
    col = data.draw(st.sampled_from(names), label="column")
    value = data.draw(CELL_VALUES, label="value")
    cells = [[c.encode("utf-8") for c in r] for r in rows]
    cells[i][header.index(col)] = value
    text = b"\n".join(b",".join(_csv_cell(c) for c in r) for r in cells) + b"\n"
    return text, i, col


# --------------------------------------------------------------------------- #
# outcome check, case counts, memory guard
# --------------------------------------------------------------------------- #

def expect_clean(call, *, file: str, row: int | None = None):
    """Run ``call()``; return its result, or the :class:`DataError` it raised.

    The error must be one line naming ``file`` (a file name or path fragment)
    and, when ``row`` is given, ``row <row>``. Anything else propagates.
    """
    try:
        return call()
    except DataError as err:
        text = str(err)
        assert "\n" not in text and "\r" not in text, f"multi-line error: {text!r}"
        assert file in text, f"error does not name {file}: {text}"
        if row is not None:
            assert f"row {row}:" in text, f"error does not name row {row}: {text}"
        return err


def assert_problems_named(problems, root: Path) -> None:
    """Every problem of a ``validate``/``check`` report names a file inside ``root`` in one line."""
    for p in problems:
        if isinstance(p, DataError):
            path, text, row = p.path, str(p), p.row
        else:
            path, text, row = Path(p["file"]), p["text"], p["row"]
        assert "\n" not in text and "\r" not in text and str(root) in text, text
        assert Path(path).absolute().is_relative_to(root.absolute()), text
        assert row is None or (isinstance(row, int) and row >= 1), text


_COUNTS: dict[str, dict] = {}


class _Cases:
    """Counts the examples of one test; ``outcomes`` counts clean loads vs refusals."""

    def __init__(self):
        self.n = 0
        self.loaded = 0
        self.refused = 0

    def __call__(self, outcome=None):
        self.n += 1
        if isinstance(outcome, DataError):
            self.refused += 1
        elif outcome is not None:
            self.loaded += 1
        return outcome


@pytest.fixture
def cases(request):
    """Call ``cases(outcome)`` once per example; the count goes to the report.

    Also fails the test if it raised the process's peak resident memory by more
    than 1 GiB (a header that makes a reader allocate its claimed size does).
    """
    counter = _Cases()
    start = time.perf_counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield counter
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    _COUNTS[request.node.nodeid] = {"cases": counter.n, "loaded": counter.loaded, "refused": counter.refused,
                                    "seconds": round(time.perf_counter() - start, 2),
                                    "peak_memory_growth_mib": round(grown / 1024, 1)}
    target = os.environ.get("ECHOSSL_FUZZ_REPORT")
    if target:
        from echossl.io import atomic_write_text

        total = sum(v["cases"] for v in _COUNTS.values())
        seconds = round(sum(v["seconds"] for v in _COUNTS.values()), 1)
        atomic_write_text(target, json.dumps({"tests": _COUNTS, "total_cases": total,
                                              "total_seconds": seconds}, indent=2))
    assert grown < MEMORY_BUDGET_KB, f"peak memory grew by {grown / 1024:.0f} MiB"


def pytest_terminal_summary(terminalreporter):
    if not _COUNTS:
        return
    terminalreporter.write_sep("-", "fuzz cases per test (loaded cleanly / refused with DataError)")
    for nodeid, c in _COUNTS.items():
        terminalreporter.write_line(f"{c['cases']:6d}  ({c['loaded']} / {c['refused']})  "
                                    f"{c['seconds']:6.1f} s  {nodeid}")
    terminalreporter.write_line(f"{sum(c['cases'] for c in _COUNTS.values()):6d}  total")


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``echossl ARGV`` in this process: ``(exit code, stdout + stderr)``."""
    from contextlib import redirect_stderr, redirect_stdout

    from echossl.cli import main

    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        try:
            main(argv)
            code = 0
        except SystemExit as ex:
            code = ex.code if isinstance(ex.code, int) else 1
    return code, out.getvalue()


@pytest.fixture
def helpers():
    """The module's helpers, for test files (importlib mode cannot import conftest by name)."""
    import types

    return types.SimpleNamespace(mutate=mutate, corrupt_cell=corrupt_cell, expect_clean=expect_clean,
                                 assert_problems_named=assert_problems_named, run_cli=run_cli)
