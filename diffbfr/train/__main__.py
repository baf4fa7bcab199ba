"""python -m diffbfr.train NETWORK [flags]: dispatch to the trainer of that network."""
import sys

from . import diffbfr as diffbfr_trainer

TRAINERS = {name: diffbfr_trainer.main for name in ("irm64", "irm128", "tem128")}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TRAINERS:
        print(f"usage: python -m diffbfr.train {{{','.join(TRAINERS)}}} [flags]  (--help after the name)")
        sys.exit(2)
    TRAINERS[sys.argv[1]](sys.argv[1:])
