"""condgan: train and evaluate class-conditional GANs (ReACGAN, FastGAN and their baselines) in plain PyTorch."""
__version__ = "0.1.0"
