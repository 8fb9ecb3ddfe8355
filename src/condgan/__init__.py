"""condgan: train and evaluate class-conditional GANs (ReACGAN, FastGAN and their baselines) in plain PyTorch."""
__version__ = "0.1.0"


def __getattr__(name: str):
    # ``condgan.load_generator`` without importing torch and the nets at ``import condgan``
    if name in ("load_generator", "GeneratorInfo"):
        from . import generator

        return getattr(generator, name)
    raise AttributeError(f"module 'condgan' has no attribute {name!r}")
