"""pytest setup shared by every test file."""
import os

# OpenMP threads that spin while other processes hold the cores made torch tests ~40x slower
# on a busy 2-core machine; passive waiting costs nothing when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
