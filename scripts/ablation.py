"""The paper's ablation, MaskablePPO with and without the teacher: ``wass ablation``
(conf/ablation.yaml, agents/ablation.py).

    python scripts/ablation.py [overrides]   # the same as: wass ablation [overrides]
"""

import sys

from agents.apps import ablation

if __name__ == "__main__":
    sys.exit(ablation())
