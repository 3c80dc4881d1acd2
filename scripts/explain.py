"""Explain the teacher's judgement of one decision of a workflow:
`wass explain` (conf/explain.yaml, teacher/apps.py).

    python scripts/explain.py [overrides]   # the same as: wass explain [overrides]
"""

import sys

from teacher.apps import explain

if __name__ == "__main__":
    sys.exit(explain())
