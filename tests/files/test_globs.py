"""Sync-rule globs: `*`, `?`, `[..]` and `**`, and the "could it match below this directory"
test."""

from __future__ import annotations

import pytest

from devloop.files.globs import glob_match, may_match_below

MATCHES = [
    ("*.py", "a.py", True),
    ("*.py", "app/a.py", False),
    ("*.py", ".hidden.py", True),
    ("app/*.py", "app/a.py", True),
    ("app/*.py", "app/sub/a.py", False),
    ("app/**/*.py", "app/a.py", True),
    ("app/**/*.py", "app/x/y/z/a.py", True),
    ("app/**/*.py", "application/a.py", False),
    ("app/**/*.py", "app/a.pyc", False),
    ("**/*.py", "a.py", True),
    ("**/*.py", "deep/er/a.py", True),
    ("**", "anything/at/all", True),
    ("static/**", "static/a", True),
    ("static/**", "static/css/a.css", True),
    ("static/**", "static", False),
    ("static/**", "staticx/a", False),
    ("**/test_*.py", "pkg/test_x.py", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/bc", False),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("file?.txt", "file/.txt", False),
    ("[abc].txt", "b.txt", True),
    ("[abc].txt", "d.txt", False),
    ("[!abc].txt", "d.txt", True),
    ("[!abc].txt", "a.txt", False),
    ("[a-c]*.js", "bundle.js", True),
    ("[a-c]*.js", "x.js", False),
    ("[unclosed", "[unclosed", True),
    ("a+b(c).txt", "a+b(c).txt", True),
    ("a.b", "axb", False),
    (r"\*.txt", "*.txt", True),
    (r"\*.txt", "a.txt", False),
    ("a**b.txt", "axyzb.txt", True),
    ("a**b.txt", "ax/b.txt", False),
    ("/rooted/*.py", "rooted/a.py", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCHES)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


BELOW = [
    ("logs/keep.txt", "logs", True),
    ("logs/keep.txt", "dist", False),
    ("logs/keep.txt", "logs/sub", False),
    ("public/**", "public", True),
    ("public/**", "dist", False),
    ("**/*.py", "anything", True),
    ("src/**/*.py", "src/deep/er", True),
    ("src/*/x.py", "src/a", True),
    ("src/*/x.py", "src/a/b", False),
    ("*.py", "dist", False),
    ("dist", "dist", False),
    ("d*/keep", "dist", True),
]


@pytest.mark.parametrize(("pattern", "rel_dir", "expected"), BELOW)
def test_may_match_below(pattern: str, rel_dir: str, expected: bool) -> None:
    assert may_match_below(pattern, rel_dir) is expected
