"""What the bench scripts that train on real MNIST share: paths, the IDX loader, the batch stream."""
import gzip, os, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def repo_path(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


def load_mnist_images(data_dir):
    """All images of the t10k (and train, if present) IDX files in data_dir, as uint8 (N, 784)."""
    arrays = []
    for split in ("train", "t10k"):  # gantry's order: train first when both are present
        for name in (f"{split}-images-idx3-ubyte.gz", f"{split}-images-idx3-ubyte"):
            path = os.path.join(data_dir, name)
            if os.path.exists(path):
                opener = gzip.open if name.endswith(".gz") else open
                with opener(path, "rb") as f:
                    raw = f.read()
                magic, n, h, w = np.frombuffer(raw[:16], dtype=">u4")
                if magic != 2051:
                    sys.exit(f"{path}: not an IDX image file (magic {magic})")
                arrays.append(np.frombuffer(raw[16:], dtype=np.uint8, count=n * h * w).reshape(n, h * w))
                break
    if not arrays:
        sys.exit(f"{data_dir}: no MNIST image file found")
    return np.concatenate(arrays)


def batches(torch, n, batch, generator):
    """Index batches from a stream of per-epoch shuffles of n items (a batch may straddle two epochs, as
    gantry's batcher does)."""
    order, pos = torch.randperm(n, generator=generator), 0
    while True:
        idx, have = [], 0
        while have < batch:
            take = min(batch - have, n - pos)
            idx.append(order[pos:pos + take]); pos += take; have += take
            if pos == n:  # new epoch: reshuffle
                order, pos = torch.randperm(n, generator=generator), 0
        yield torch.cat(idx)


def read_metrics(run_dir):
    """The rows of a gantry run's metrics.csv as dicts of floats (empty cells left out)."""
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        header = f.readline().strip().split(",")
        return [{k: float(v) for k, v in zip(header, line.strip().split(",")) if v != ""} for line in f]
