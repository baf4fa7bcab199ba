"""python -m diffbfr.train NAME [flags]: dispatch to the trainer registered under NAME.

A trainer is a function main(argv) whose argv starts with NAME itself (one trainer may serve
several names, as diffbfr.py does for its three networks). Register new ones in TRAINERS.
"""
import sys

from . import diffbfr as diffbfr_trainer
from . import dre as dre_trainer, panini as panini_trainer
from .run_state import InitError

TRAINERS = {name: diffbfr_trainer.main for name in diffbfr_trainer.NETS}
TRAINERS.update({**dict.fromkeys(panini_trainer.NAMES, panini_trainer.main), dre_trainer.NAME: dre_trainer.main})


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in TRAINERS:
        print(f"usage: python -m diffbfr.train {{{','.join(TRAINERS)}}} [flags]  (--help after the name)",
              file=sys.stderr)
        return 2
    try:
        TRAINERS[argv[0]](argv)
    except InitError as e:  # a run that cannot start as asked: say why, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
