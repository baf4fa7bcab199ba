"""Diffusion: the process (schedule.py), the samplers (samplers.py) and the network (unet.py),
kept apart as in guided-diffusion: samplers work with any v-prediction function."""
