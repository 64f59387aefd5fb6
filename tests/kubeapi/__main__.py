"""python -m tests.kubeapi --port N --kubeconfig PATH: run the test API server by hand."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from tests.kubeapi.app import CONTEXT, KubeApiServer
from tests.kubeapi.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument("--kubeconfig", type=Path, default=Path("kubeapi.kubeconfig"))
    parser.add_argument("--context", default=CONTEXT)
    parser.add_argument("--fast", action="store_true", help="short back-offs, as in the tests")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = KubeApiServer(port=args.port, settings=Settings.fast() if args.fast else Settings())
    server.start()
    server.write_kubeconfig(args.kubeconfig, args.context)
    print(
        f"serving {server.url}; kubeconfig {args.kubeconfig} (context {args.context}); Ctrl-C "
        f"stops",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
