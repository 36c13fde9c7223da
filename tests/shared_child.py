"""One bulkops process of a multi-process test: a job on the account through ``--redis-url``.

``python -m tests.shared_child URL REDIS_URL OUT PREFIX ROWS SKEW_S`` creates ROWS tickets
(external ids PREFIX1..) and prints the report's JSON on its last line. ``SKEW_S`` moves this
process's wall clock (``time.time``) to simulate another host whose clock is off.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import anyio
import orjson


def main(argv: list[str]) -> int:
    url, redis_url, out, prefix, rows, skew = argv
    if float(skew):
        real = time.time
        time.time = lambda: real() + float(skew)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from bulkops import JobConfig, Operation, Secret, run_job
    from bulkops.testing import DEFAULT_FAKE_TOKEN

    config = JobConfig(
        operation=Operation.CREATE,
        token=Secret(DEFAULT_FAKE_TOKEN),
        base_url=url,
        out_dir=Path(out),
        batch_size=10,
        id_property="external_id",
        redis_url=redis_url,
    )
    fixed = {"hs_pipeline": "0", "hs_pipeline_stage": "1"}
    data = [
        {"subject": f"s{n}", "external_id": f"{prefix}{n}", **fixed}
        for n in range(1, int(rows) + 1)
    ]
    report = anyio.run(run_job, config, data)
    print(orjson.dumps(report.to_json()).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
