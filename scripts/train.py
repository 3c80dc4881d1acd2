"""Train an agent on WassSched-v0 and compare it with baselines: ``wass train`` (conf/train.yaml).

python scripts/train.py [overrides]      # the same as: wass train [overrides]
"""

import sys

from agents.apps import train

if __name__ == "__main__":
    sys.exit(train())
