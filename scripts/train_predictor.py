"""Stage 2: train the teacher's encoder and makespan predictor on a knowledge base:
`wass train-predictor` (conf/train_predictor.yaml, teacher/apps.py).

    python scripts/train_predictor.py [overrides]   # the same as: wass train-predictor [overrides]
"""

import sys

from teacher.apps import train_predictor

if __name__ == "__main__":
    sys.exit(train_predictor())
