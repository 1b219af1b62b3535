"""Entry point of a reward-pool worker process: `python -m or1.rewards._worker FD`."""

import sys
from multiprocessing.connection import Connection

from or1.rewards.pool import worker_main

if __name__ == "__main__":
    worker_main(Connection(int(sys.argv[1])))
