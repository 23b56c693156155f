"""Generate the trial pools of the coverage tests (``tests/data/pools.npz``); run once, commit the output.

    .venv/bin/python tests/data/make_pools.py            # about 10 minutes on 2 CPU cores

Each pool is one grid point of the shipped lenet5/mnist5k model run paired (``Experiment.evaluate_point``):
the unprotected baseline and its plans, many trials, with the per-image correctness of every trial kept
(bit-packed), so a test can resample trials *and* test images and measure how often an interval covers
the pool's own mean. Printed: per plan the mean accuracy, skew, and the paired recovered share.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere in the repo

OUT = Path(__file__).with_name("pools.npz")

#: name -> (format, BER, trials, plans); the first plan is always the baseline.
POOLS = {
    # fp32: a bimodal, left-skewed point (most trials near clean, a third or so ruined by an exponent flip).
    "fp32": ("fp32", 3e-5, 200, (("lrp", 1.0),)),
    # fp32 at a third of that BER: most trials near clean, a rare exponent flip ruins one (skew about -1).
    "fp32_low": ("fp32", 1e-5, 200, (("lrp", 1.0),)),
    # int8 BER 1e-2: the headline point (LRP 1% and magnitude 1%).
    "int8": ("int8", 1e-2, 200, (("lrp", 1.0), ("magnitude", 1.0))),
}


def main(names: list[str]) -> None:
    """Run the pools named (all by default) and write them into ``pools.npz`` (others kept)."""
    import torch

    from xtmr_core.experiment import Experiment
    from xtmr_core.spec import CampaignSpec

    torch.set_num_threads(1)  # the machine is shared; one thread per process is faster under contention
    exp = Experiment("lenet5", "mnist5k")
    data = dict(np.load(OUT)) if OUT.exists() else {}
    for name in names or list(POOLS):
        fmt, ber, trials, plans = POOLS[name]
        specs = [CampaignSpec(protect=p, budget=b, ber=ber, fmt=fmt, trials=trials, seed=0) for p, b in plans]
        point = exp.evaluate_point(specs, progress=lambda d, n: print(f"\r{name} {d}/{n}", end="", file=sys.stderr))
        print(file=sys.stderr)
        correct = np.stack([np.stack(r.correct) for r in point.results])  # plans x trials x images
        data[f"{name}_correct"] = np.packbits(correct, axis=-1)
        data[f"{name}_clean"] = np.packbits(point.baseline.clean_correct)
        meta = {"images": int(correct.shape[-1]), "ber": ber, "format": fmt, "plans": [r.plan for r in point.results]}
        data[f"{name}_meta"] = np.array(json.dumps(meta))
        for i, r in enumerate(point.results):
            a = np.asarray(r.accuracies)
            line = f"{name} {r.plan}: mean {a.mean():.4f} skew {float(((a - a.mean()) ** 3).mean() / a.std() ** 3):.2f}"
            if i:
                line += f" recovered {point.recovered(i)}"
            print(line)
    np.savez_compressed(OUT, **data)


def load(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """A pool: ``(correct, clean_correct, meta)``; ``correct`` is bool ``plans x trials x images``."""
    with np.load(OUT) as z:
        meta = json.loads(str(z[f"{name}_meta"]))
        m = meta["images"]
        correct = np.unpackbits(z[f"{name}_correct"], axis=-1, count=m).astype(bool)
        clean = np.unpackbits(z[f"{name}_clean"], count=m).astype(bool)
    return correct, clean, meta


if __name__ == "__main__":
    main(sys.argv[1:])
