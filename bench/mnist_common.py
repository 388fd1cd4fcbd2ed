"""What the bench scripts that train on real MNIST share: paths, the IDX loader, the batch stream."""
import gzip, os, subprocess, sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def repo_path(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


def add_common_arguments(ap):
    """The arguments every script here takes: the gantry binary, torch_reference.py, the data, the threads."""
    ap.add_argument("--gantry", default=os.environ.get("GANTRY", "target/release/gantry"))
    ap.add_argument("--reference", default=os.environ.get("TORCH_REFERENCE", "../shared/bench/torch_reference.py"))
    ap.add_argument("--data", default="../shared/data/mnist", help="directory with the MNIST IDX files")
    ap.add_argument("--threads", type=int, default=0, help="threads for both (default: each tool's default)")


def import_torch_reference(path):
    """The torch_reference.py module at `path` (relative to the repository or absolute)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(repo_path(path))))
    import torch_reference
    return torch_reference


def run_gantry(cmd, env=None):
    """Runs a gantry command line and returns its stdout; a failure ends the script with gantry's output."""
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout


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
