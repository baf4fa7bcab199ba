"""diffbfr: blind face restoration with DiffBFR (IRM + TEM diffusion models).

The path of an image: imageio (load) -> detect -> align -> pipeline (IRM 64 -> IRM 128 -> TEM,
built on diffusion + unet) -> paste.
"""
import os

# Must be set before torch (and its OpenMP runtime) loads: spinning OpenMP threads make torch
# tens of times slower whenever another process shares the cores (a laptop, a 2-core Space).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
