"""Evaluate schedulers on workloads x clusters x seeds: ``wass evaluate`` (conf/evaluate.yaml).

python scripts/evaluate.py [experiment=NAME] [overrides]   # the same as: wass evaluate ...
"""

import sys

from agents.apps import evaluate

if __name__ == "__main__":
    sys.exit(evaluate())
