#!/usr/bin/env python3
"""Quality anchor: Gantry's quality metric on its GAN presets beside PyTorch's same models, at equal steps.

Trains torch_reference.py's `dcgan` and `mlpgan` (Adam 2e-4, betas (0.5, 0.999), non-saturating BCE, batch 64)
on the MNIST files in --data and, every --every steps, scores --samples images generated from fixed noise with
`gantry score --data idx:DIR` (the same feature network and real statistics Gantry's runs on those files are
scored with; the images pass through an 8-bit IDX file). Gantry side: `gantry train --preset dcgan-digits` /
`mlp-gan-digits` (the same networks and settings) with `--data idx:DIR`, and the fd / confident / classes
columns of its metrics.csv at the same steps. Both train on all the images (`data.holdout=0`); both generate
in chunks of 128 with batch statistics (PyTorch's train mode, as its dcgan example samples).

  ~/.cache/torchenv/bin/python bench/quality_anchor.py [--gantry PATH] [--reference PATH] [--data DIR]
      [--models dcgan,mlpgan] [--seeds 0] [--steps 2000] [--every 250] [--samples 512] [--threads N] [--json]
"""
import argparse, json, os, shutil, statistics, sys, tempfile, time

import numpy as np

from mnist_common import (add_common_arguments, batches, import_torch_reference, load_mnist_images, read_metrics,
                          repo_path, run_gantry)

PRESETS = {"dcgan": "dcgan-digits", "mlpgan": "mlp-gan-digits"}
BATCH = 64
METRICS = ("fd", "confident", "classes")


def write_idx(folder, images):
    """images: float array (N, 28, 28) in [-1, 1], written as an MNIST-named IDX file in `folder`."""
    pixels = np.clip(np.rint((images + 1) * 127.5), 0, 255).astype(np.uint8)
    header = np.array([2051, len(pixels), 28, 28], dtype=">u4").tobytes()
    with open(os.path.join(folder, "t10k-images-idx3-ubyte"), "wb") as f:
        f.write(header + pixels.tobytes())


def gantry_score(gantry, data_dir, images, threads):
    folder = tempfile.mkdtemp(prefix="quality-anchor-samples-")
    try:
        write_idx(folder, images)
        cmd = [gantry, "score", "--data", f"idx:{data_dir}", "--samples", f"idx:{folder}", "--json"]
        if threads:
            cmd += ["--threads", str(threads)]
        return json.loads(run_gantry(cmd))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def torch_curve(torch, reference, model, pixels, seed, a, gantry, data_dir):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).view(-1, 1, 28, 28)
    g, d, noise = getattr(reference, model)()
    step = reference.gan_step_fn(g, d, noise)
    fixed = noise(a.samples)
    curve = {}
    for s, idx in zip(range(1, a.steps + 1), batches(torch, len(x_all), BATCH, gen)):
        step(x_all[idx])
        if s % a.every == 0:
            with torch.no_grad():
                images = torch.cat([g(z) for z in fixed.split(128)]).view(-1, 28, 28).numpy()
            curve[s] = gantry_score(gantry, data_dir, images, a.threads)
    return curve


def gantry_curve(gantry, model, seed, a, data_dir):
    out = tempfile.mkdtemp(prefix=f"quality-anchor-{model}-s{seed}-")
    shutil.rmtree(out)  # gantry creates it
    cmd = [gantry, "train", "--preset", PRESETS[model], "--data", f"idx:{data_dir}", "--steps", str(a.steps),
           "--seed", str(seed), "--set", "data.holdout=0", "--set", f"quality.every={a.every}",
           "--set", f"quality.samples={a.samples}", "--out", out]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    run_gantry(cmd)
    curve = {int(row["step"]): {k: row[k] for k in METRICS if k in row} for row in read_metrics(out) if "fd" in row}
    shutil.rmtree(out, ignore_errors=True)
    return curve


def mean_curve(curves):
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return {s: {k: statistics.fmean(c[s][k] for c in curves) for k in METRICS} for s in steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(ap)
    ap.add_argument("--models", default="dcgan,mlpgan")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    reference = import_torch_reference(a.reference)
    gantry = os.path.abspath(repo_path(a.gantry))
    data_dir = os.path.abspath(repo_path(a.data))
    pixels = load_mnist_images(data_dir)
    seeds = [int(s) for s in a.seeds.split(",")]
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), {gantry}: "
          f"{pixels.shape[0]} images from {data_dir}", file=sys.stderr)

    result = {"steps": a.steps, "every": a.every, "samples": a.samples, "seeds": seeds, "data": data_dir}
    for model in a.models.split(","):
        sides = {"gantry": [], "torch": []}
        for seed in seeds:
            t = time.perf_counter()
            sides["gantry"].append(gantry_curve(gantry, model, seed, a, data_dir))
            print(f"  {model} gantry seed {seed}: {time.perf_counter() - t:.0f} s {json.dumps(sides['gantry'][-1])}",
                  file=sys.stderr)
            t = time.perf_counter()
            sides["torch"].append(torch_curve(torch, reference, model, pixels, seed, a, gantry, data_dir))
            print(f"  {model} torch  seed {seed}: {time.perf_counter() - t:.0f} s {json.dumps(sides['torch'][-1])}",
                  file=sys.stderr)
        result[model] = {side: mean_curve(curves) for side, curves in sides.items()}

    if a.json:
        print(json.dumps(result))
        return
    for model in a.models.split(","):
        g, t = result[model]["gantry"], result[model]["torch"]
        print(f"\n{model}: Gantry `{PRESETS[model]}` vs PyTorch torch_reference `{model}`, mean of seeds {a.seeds}, "
              f"{a.samples} samples, batch {BATCH}\n")
        print("| step | fd Gantry | fd PyTorch | confident Gantry | confident PyTorch | classes Gantry | classes PyTorch |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for s in sorted(set(g) & set(t)):
            print(f"| {s} | {g[s]['fd']:.2f} | {t[s]['fd']:.2f} | {100 * g[s]['confident']:.0f} % | "
                  f"{100 * t[s]['confident']:.0f} % | {g[s]['classes']:.1f} | {t[s]['classes']:.1f} |")


if __name__ == "__main__":
    main()
