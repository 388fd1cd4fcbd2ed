"""Judges a run's sample grids by a classifier independent of Gantry's quality metric.

Trains a small convolutional classifier (PyTorch) on an image folder with one subfolder per class (such as
`cargo run --release --example shape_folder -- DIR` writes), then reads the tiles of a run's saved sample
grids (`samples/step-*.png`) and prints, per step, the share of samples it reads with probability >= 0.9
and how many classes they cover, beside the same figures for held-out real images. Gantry's own metric
uses a small MLP, which on 64x64 colour pictures reads too poorly for its confidence share to mean much.

    ~/.cache/torchenv/bin/python bench/shape_judge.py --folder DIR --run RUN_DIR [--size 64] [--columns 8]
"""
import argparse, glob, os, struct, zlib

import numpy as np


def read_png(path):
    """8-bit RGB or RGBA PNG (no interlace) as an (h, w, 3) uint8 array, without PIL."""
    data = open(path, "rb").read()
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), f"{path}: only 8-bit RGB/RGBA PNGs are read"
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 255
        else:  # sub, average and Paeth depend on the pixel to the left: one byte at a time
            cur = np.zeros(stride, np.int32)
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if kind == 1:
                    p = a
                elif kind == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)[:, :, :3].astype(np.uint8)


def to_input(images):
    """(n, h, w, 3) uint8 to (n, 3, h, w) floats in [-1, 1], as Gantry scales pixels."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), np.float32) / 127.5 - 1.0


def classifier(torch, classes, size):
    nn = torch.nn
    flat = 64 * (size // 8) ** 2
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(),
        nn.Linear(128, classes))


def judge(torch, net, x):
    with torch.no_grad():
        p = torch.softmax(net(torch.from_numpy(x)), 1)
    top, label = p.max(1)
    confident = top >= 0.9
    counts = np.bincount(label[confident].numpy(), minlength=p.shape[1])
    covered = int((counts >= max(1, 0.01 * len(x))).sum())
    return float(confident.float().mean()), covered, counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", required=True, help="image folder, one subfolder per class")
    ap.add_argument("--run", required=True, help="a Gantry run directory with samples/step-*.png")
    ap.add_argument("--size", type=int, default=64, help="tile size of the grids (data.image_size)")
    ap.add_argument("--columns", type=int, default=8, help="tiles per grid row")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    names = sorted(d for d in os.listdir(a.folder) if os.path.isdir(os.path.join(a.folder, d)))
    files = [(f, i) for i, n in enumerate(names) for f in sorted(glob.glob(os.path.join(a.folder, n, "*.png")))]
    order = np.random.default_rng(0).permutation(len(files))
    x = to_input(np.stack([read_png(files[i][0]) for i in order]))
    y = np.array([files[i][1] for i in order])
    held = len(x) // 10
    net = classifier(torch, len(names), a.size)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    xt, yt = torch.from_numpy(x[held:]), torch.from_numpy(y[held:])
    for _ in range(a.epochs):
        for batch in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = float((net(torch.from_numpy(x[:held])).argmax(1).numpy() == y[:held]).mean())
    print(f"classifier: {len(names)} classes ({', '.join(names)}), {100 * accuracy:.1f} % held-out accuracy")
    share, covered, counts = judge(torch, net, x[:held])
    print(f"real held-out: {100 * share:.0f} % confident, {covered} classes, confident per class {counts.tolist()}")
    print("step  confident  classes  confident per class")
    for path in sorted(glob.glob(os.path.join(a.run, "samples", "step-*.png"))):
        grid = read_png(path)
        pad = (grid.shape[1] - a.columns * a.size) // (a.columns + 1)
        rows = (grid.shape[0] - pad) // (a.size + pad)
        tiles = [grid[pad + r * (a.size + pad):][:a.size, pad + c * (a.size + pad):][:, :a.size]
                 for r in range(rows) for c in range(a.columns)]
        share, covered, counts = judge(torch, net, to_input(np.stack(tiles)))
        step = int(os.path.basename(path)[5:-4])
        print(f"{step:5d}  {100 * share:8.0f} %  {covered:7d}  {counts.tolist()}")


if __name__ == "__main__":
    main()
