"""Print a pip constraints file pinning each runtime dependency (and the validate extra's) at
the lowest version pyproject.toml admits: `make test-floor` installs with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
for spec in [*project["dependencies"], *project["optional-dependencies"]["validate"]]:
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+).*", spec)
    if not m:
        raise SystemExit(f"{spec}: every runtime dependency needs a >= floor")
    print(f"{m[1]}=={m[2]}")
