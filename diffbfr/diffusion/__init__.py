"""Diffusion, the process only: the schedule (schedule.py) and the samplers (samplers.py), kept
apart from the networks (diffbfr/nets/) as in guided-diffusion: samplers work with any
v-prediction function."""
