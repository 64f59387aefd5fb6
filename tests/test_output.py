"""The text view: what a person reads for each event."""

from __future__ import annotations

import io

from devloop.model.events import Restarted
from devloop.output import TextSink


def test_a_restart_names_the_whole_container() -> None:
    out = io.StringIO()
    TextSink(out)(Restarted(service="ecoprobe", container="ecoprobe-init-web-0"))
    assert out.getvalue() == "[ecoprobe] restarted process in ecoprobe-init-web-0\n"
