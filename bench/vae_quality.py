#!/usr/bin/env python3
"""VAE quality check: gantry's `vae-digits` preset against PyTorch's vae example on real MNIST.

Issue criterion: on the real MNIST test set (`idx:../shared/data/mnist`), the `vae-digits` preset's loss per
image after 2,000 steps is in the range PyTorch's vae example reaches on the same data with the same batch
size and steps.

PyTorch side: the `VAE` class of torch_reference.py (784-400-20, sigmoid output), Adam 1e-3, batch 128,
BCE(sum) + KLD divided by the batch ("per image"), pixels p/127.5 - 1 mapped to [0, 1] by (x + 1) / 2 exactly
as torch_reference's vae step does. Batches are drawn from a stream of per-epoch shuffles of all 10,000
images (reshuffled every epoch; a batch may straddle two epochs, as gantry's batcher does).
Gantry side: `gantry train --preset vae-digits --data idx:DIR --steps N --set data.holdout=0 --seed S`, and
the `loss` column of the run's metrics.csv.
Statistic, for both: mean loss per image over the last 100 steps (1901-2000), per seed; then min/mean/max.

  ~/.cache/torchenv/bin/python bench/vae_quality.py [--gantry PATH] [--reference PATH] [--data DIR]
      [--seeds 0,1,2] [--steps 2000] [--threads N] [--skip-torch | --skip-gantry] [--json]
"""
import argparse, json, os, shutil, statistics, sys, tempfile, time

import numpy as np

from mnist_common import (add_common_arguments, batches, import_torch_reference, load_mnist_images, read_metrics,
                          repo_path, run_gantry)


def torch_run(VAE, pixels, seed, steps, batch, last):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)  # [-1, 1], as gantry loads it
    n = x_all.shape[0]
    m = VAE()
    o = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for step, idx in zip(range(1, steps + 1), batches(torch, n, batch, gen)):
        x = x_all[idx]
        o.zero_grad()
        x01 = (x + 1) / 2
        r, mu, lv = m(x01)
        loss = F.binary_cross_entropy(r, x01.view(-1, 784), reduction='sum') - 0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
        loss.backward(); o.step()
        if step > steps - last:
            losses.append(loss.item() / batch)
    return statistics.fmean(losses)


def gantry_run(gantry, data_dir, seed, steps, last, threads, keep):
    out = tempfile.mkdtemp(prefix=f"vae-quality-s{seed}-", dir=keep)
    shutil.rmtree(out)  # gantry creates it
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = env["CANDLE_NUM_THREADS"] = str(threads)
    cmd = [gantry, "train", "--preset", "vae-digits", "--data", f"idx:{data_dir}", "--steps", str(steps),
           "--set", "data.holdout=0", "--seed", str(seed), "--out", out]
    stdout = run_gantry(cmd, env)
    losses = [row["loss"] for row in read_metrics(out) if steps - last < row["step"] <= steps]
    if len(losses) != last:
        sys.exit(f"{out}/metrics.csv: expected {last} rows for steps {steps - last + 1}-{steps}, got {len(losses)}")
    if keep is None:
        shutil.rmtree(out, ignore_errors=True)
    return statistics.fmean(losses), stdout.strip().splitlines()[-1], out


def summary(values):
    return {"per_seed": values, "min": min(values), "mean": statistics.fmean(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(ap)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128, help="PyTorch batch (the preset's is 128)")
    ap.add_argument("--last", type=int, default=100, help="average the loss over this many final steps")
    ap.add_argument("--keep", default=None, help="keep gantry's run directories under this directory")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-gantry", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    data_dir = os.path.abspath(repo_path(a.data))
    result = {"steps": a.steps, "batch": a.batch, "last": a.last, "seeds": seeds, "data": data_dir}

    if not a.skip_torch:
        import torch
        if a.threads:
            torch.set_num_threads(a.threads)
        VAE = import_torch_reference(a.reference).VAE
        pixels = load_mnist_images(data_dir)
        print(f"PyTorch {torch.__version__}: {pixels.shape[0]} images from {data_dir}, "
              f"{torch.get_num_threads()} threads", file=sys.stderr)
        values = []
        for s in seeds:
            t = time.perf_counter()
            values.append(torch_run(VAE, pixels, s, a.steps, a.batch, a.last))
            print(f"  torch  seed {s}: {values[-1]:.2f}  ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        result["torch"] = summary(values)

    if not a.skip_gantry:
        gantry = os.path.abspath(repo_path(a.gantry))
        keep = os.path.abspath(a.keep) if a.keep else None
        if keep:
            os.makedirs(keep, exist_ok=True)
        print(f"gantry: {gantry}", file=sys.stderr)
        values = []
        for s in seeds:
            t = time.perf_counter()
            v, line, out = gantry_run(gantry, data_dir, s, a.steps, a.last, a.threads, keep)
            values.append(v)
            print(f"  gantry seed {s}: {v:.2f}  ({time.perf_counter() - t:.0f} s; {line})", file=sys.stderr)
        result["gantry"] = summary(values)

    if a.json:
        print(json.dumps(result))
        return
    print(f"\nMean loss per image (BCE sum + KL, / batch) over steps {a.steps - a.last + 1}-{a.steps}, "
          f"batch {a.batch}, real MNIST test set\n")
    sides = [k for k in ("gantry", "torch") if k in result]
    print("| seed | " + " | ".join({"gantry": "gantry vae-digits", "torch": "PyTorch vae"}[k] for k in sides) + " |")
    print("|---:|" + "---:|" * len(sides))
    for i, s in enumerate(seeds):
        print(f"| {s} | " + " | ".join(f"{result[k]['per_seed'][i]:.2f}" for k in sides) + " |")
    for stat in ("min", "mean", "max"):
        print(f"| {stat} | " + " | ".join(f"{result[k][stat]:.2f}" for k in sides) + " |")
    if len(sides) == 2:
        g, t = result["gantry"], result["torch"]
        inside = t["min"] <= g["mean"] <= t["max"]
        print(f"\ngantry mean {g['mean']:.2f} vs PyTorch range [{t['min']:.2f}, {t['max']:.2f}]: "
              f"{'inside' if inside else 'outside'} the range "
              f"({(g['mean'] / t['mean'] - 1) * 100:+.1f} % from PyTorch's mean)")


if __name__ == "__main__":
    main()
