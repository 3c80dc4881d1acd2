"""Stage 1: seed the teacher's knowledge base with runs of heuristic policies:
`wass build-kb` (conf/build_kb.yaml, teacher/apps.py).

    python scripts/build_kb.py [overrides]   # the same as: wass build-kb [overrides]
"""

import sys

from teacher.apps import build_kb

if __name__ == "__main__":
    sys.exit(build_kb())
