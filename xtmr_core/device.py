"""Where computation runs: CUDA when a GPU is present, the CPU otherwise."""

import torch


def default_device() -> torch.device:
    """Return the device the engine uses by default.

    Returns:
        ``cuda`` when a CUDA GPU is available, else ``cpu``. Nothing in the project needs a GPU.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
