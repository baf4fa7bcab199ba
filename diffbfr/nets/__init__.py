"""Every network of the project and its config, in one folder:

    config.py          ConfigMixin: the one to_dict / from_dict round-trip every config uses
    catalog.py         every class with a weights file, by the name its JSON stores (checkpoint.load_network)
    unet_config.py     UNetConfig and the timestep embedding, which both diffusion networks read
    unet.py            the diffusion UNet of DiffBFR (irm64, irm128, tem128): their configs, build
    shufflenet.py      the CPU-shaped variant of the same network (arch "shuffle")
    panini_prior.py    Panini-Net's GAN prior: StyleGAN2-style generator, discriminator, losses
    panini_encoder.py  Panini-Net's LQ encoder (features + W+ latents)
    panini_dre.py      Panini-Net's degradation representation encoder (DRE) and its MoCo pretraining
    panini_dafi.py     DAFI blocks, the assembled PaniniNet, and its four shipped parts (split / assemble)
    estimator.py       Auto's degradation estimator network

The diffusion process (schedule, samplers) is diffbfr/diffusion/; what runs the networks on
faces is diffbfr/methods/; what trains them is diffbfr/train/; what loads and saves them is
diffbfr/checkpoint.py. Nothing here imports outside this folder but torch and the standard library.
"""
