"""Panini-Net (Wang et al., AAAI 2022) at the 128 px face frame: a GAN prior (prior.py), an LQ
encoder (encoder.py), a degradation representation encoder (dre.py) and the DAFI blocks that
blend prior and input features according to the degradation (dafi.py: PaniniNet)."""
