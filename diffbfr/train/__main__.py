"""python -m diffbfr.train NAME [flags]: dispatch to the trainer registered under NAME.

A trainer is a function main(argv) whose argv starts with NAME itself (one trainer may serve
several names, as diffusion_trainer.py does for its three networks). Register new ones in
TRAINERS, with one line saying what it trains.
"""
import sys

from . import auto_calibration, diffusion_trainer, dre_trainer, estimator_trainer, panini_trainer, snapshot
from .run_state import InitError

# name -> (main(argv), what it trains / writes)
TRAINERS = {
    **{name: (diffusion_trainer.main, f"DiffBFR diffusion network {name} -> weights/diffbfr/{name}.safetensors")
       for name in diffusion_trainer.NETS},
    panini_trainer.PRIOR: (panini_trainer.main, "Panini-Net's GAN prior (generator + discriminator)"),
    panini_trainer.RESTORE: (panini_trainer.main, "Panini-Net's restoration net (encoder, DAFI, fine-tuned prior)"),
    dre_trainer.NAME: (dre_trainer.main, "Panini-Net's degradation encoder, contrastive -> weights/panini/dre.safetensors"),
    estimator_trainer.NAME: (estimator_trainer.main, "Auto's degradation estimator -> weights/estimator/"),
    auto_calibration.NAME: (auto_calibration.main, "Auto's start-step calibration -> weights/diffbfr/auto_calibration.json"),
    snapshot.NAME: (snapshot.main, "a running (or stopped) run's EMA weights, exported for a mid-run bench"),
}


def usage() -> str:
    width = max(map(len, TRAINERS))
    return ("usage: python -m diffbfr.train NAME [flags]   (python -m diffbfr.train NAME --help: its flags)\n\n"
            "NAME is one of:\n" + "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in TRAINERS.items()))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if not argv or argv[0] not in TRAINERS:
        print(usage(), file=sys.stderr)
        return 2
    try:
        result = TRAINERS[argv[0]][0](argv)
    except InitError as e:  # a run that cannot start as asked: say why, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
