"""Entry point of a reward-pool worker process: `python -m or1.rewards._worker FD`.

The rewards are imported here, before the worker says it is ready, so that their import
time does not count against the first job's deadline (pool.py cannot import them: math.py
uses the pool, and the import would make a cycle).
"""

import sys
from multiprocessing.connection import Connection

import or1.rewards.math  # noqa: F401
from or1.rewards.pool import worker_main

if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])))
