#!/usr/bin/env python3
"""PyTorch's side of `gantry bench --products`: how much of a torch_reference.py step its matrix products
(convolutions and their gradients, matrix multiplies) take, from torch.profiler's self times of the ops.

Runs the model's step once unprofiled for its time (as torch_reference.py --steps measures it), then the same
number of steps under the profiler for the ops' shares (the profiler adds a few percent to each op).

  ~/.cache/torchenv/bin/python bench/torch_products.py [--model dcgan] [--steps 20] [--threads 2]
      [--reference ../shared/bench/torch_reference.py] [--json]
"""
import argparse, json

from mnist_common import import_torch_reference

# The ops that are products (their own time, not their callers'): torch's CPU convolutions run through
# these, transposed ones too; linear layers through addmm / mm.
PRODUCT_OPS = ("aten::convolution_backward", "aten::mkldnn_convolution", "aten::_convolution",
               "aten::addmm", "aten::mm", "aten::bmm")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="dcgan", choices=["dcgan", "vae", "mlpgan", "convae", "dcgan64"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference", default="../shared/bench/torch_reference.py")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tr = import_torch_reference(a.reference)
    import torch
    from torch.profiler import profile, ProfilerActivity
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    makers = {
        "dcgan": (lambda: tr.gan_step_fn(*tr.dcgan()), 64, (1, 28, 28)),
        "mlpgan": (lambda: tr.gan_step_fn(*tr.mlpgan()), 64, (1, 28, 28)),
        "vae": (tr.vae_step_fn, 128, (1, 28, 28)),
        "convae": (tr.convae_step_fn, 64, (1, 28, 28)),
        "dcgan64": (lambda: tr.gan_step_fn(*tr.dcgan64()), 128, (3, 64, 64)),
    }
    make, batch, shape = makers[a.model]
    step = make()
    timed = tr.measure(a.model, step, batch, a.steps, shape=shape)
    x = torch.rand(batch, *shape) * 2 - 1
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step(x)
    ops = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(ops.values())
    products = {k: ops[k] for k in PRODUCT_OPS if k in ops}
    share = sum(products.values()) / total
    step_ms = 1e3 / timed["steps_per_s"]
    result = {"model": a.model, "batch": batch, "threads": torch.get_num_threads(), "step_ms": step_ms,
              "products_share": share, "products_ms": share * step_ms,
              "ops_share": {k: v / total for k, v in products.items()}}
    if a.json:
        print(json.dumps(result))
        return
    print(f"{a.model} batch {batch}, {result['threads']} threads: a step {step_ms:.1f} ms, its products "
          f"{100 * share:.0f} % of it ({share * step_ms:.1f} ms), the rest {(1 - share) * step_ms:.1f} ms")
    for k, v in sorted(products.items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {100 * v / total:5.1f} %")


if __name__ == "__main__":
    main()
