"""diffbfr: blind face restoration with two methods, DiffBFR (IRM 64 -> IRM 128 -> TEM, truncated
diffusion) and Panini-Net (GAN prior + DAFI, one pass).

The path of an image (photo.py runs it for every method): imageio (load) -> faces (detect,
align) -> [auto: start steps per face] -> methods (the method's stages, over nets/ and
diffusion/) -> faces.paste (paste back) -> faces.identity. Training: train/. Module map:
docs/ARCHITECTURE.md.
"""
import os

# Must be set before torch (and its OpenMP runtime) loads: spinning OpenMP threads make torch
# tens of times slower whenever another process shares the cores (a laptop, a 2-core Space).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
