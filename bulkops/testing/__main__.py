"""``python -m bulkops.testing``: serve the embedded fake HubSpot (a test server) on a port.

The same server as ``bulkops fake-server``; this entry point lives with the fake, so running it
needs nothing of the CLI's.
"""

from __future__ import annotations

import argparse
import sys

from bulkops.testing._fake_cli import (
    DESCRIPTION,
    add_fake_server_arguments,
    run_fake_server_from_args,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bulkops.testing", description=DESCRIPTION, allow_abbrev=False
    )
    add_fake_server_arguments(parser)
    return run_fake_server_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover - run as a module
    sys.exit(main())
