"""The GPU anchor of the CLNN GPU kit: CLNN's workloads run by PyTorch on CUDA, on the same GPU.

Usage: python3 tools/torch_cuda_mlp.py DATA_FOLDER [--epochs 5] [--quick]

Trains what `clnn train` trains by default (784-50-10 ReLU MLP with CLNN's initialisation, cross-entropy, SGD lr 0.1
with cosine decay over the run, batch 64, inputs normalised by the training set's mean and std; the random streams
differ, so curves agree in distribution, not bit for bit), with the data resident on the GPU and each
minibatch taken through a shuffled index list, as CLNN does; then times what `clnn bench train` and `clnn bench gemm`
time. FP32 throughout (TF32 off), so the arithmetic matches CLNN's. Each result is one line `anchor NAME VALUE UNIT`
for the kit's table, after a human-readable line.
"""
import argparse
import gzip
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(folder):
    def find(name):
        for candidate in (name + ".gz", name):
            path = os.path.join(folder, candidate)
            if os.path.exists(path):
                return path
        sys.exit(f"torch_cuda_mlp: {folder} has no {name}(.gz)")
    xt = idx(find("train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32)
    yt = idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    xv = idx(find("t10k-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32)
    yv = idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    mean, std = xt.mean(), xt.std()
    return (xt - mean) / std, yt, (xv - mean) / std, yv


def anchor(name, value, unit):
    print(f"anchor {name} {value:.6g} {unit}", flush=True)


def synced(f):
    torch.cuda.synchronize()
    start = time.perf_counter()
    f()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def mlp(sizes):
    # CLNN's initialisation: Kaiming-normal weights (fan-in, gain √2), zero biases.
    layers = []
    for i in range(len(sizes) - 1):
        linear = torch.nn.Linear(sizes[i], sizes[i + 1])
        torch.nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        torch.nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).cuda()


def train(x, y, xv, yv, sizes, batch, epochs, lr=0.1, cosine=True):
    torch.manual_seed(42)
    model = mlp(sizes)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    n = x.shape[0]
    steps = (n + batch - 1) // batch
    total = steps * epochs
    times, accuracy = [], 0.0
    for epoch in range(epochs):
        def one_epoch():
            perm = torch.randperm(n, device="cuda")
            for s in range(steps):
                if cosine:
                    for group in opt.param_groups:
                        group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (epoch * steps + s) / total))
                index = perm[s * batch:(s + 1) * batch]
                loss = F.cross_entropy(model(x[index]), y[index])
                opt.zero_grad(set_to_none=False)
                loss.backward()
                opt.step()
        times.append(synced(one_epoch))
        with torch.no_grad():
            accuracy = (model(xv).argmax(1) == yv).float().mean().item()
        print(f"{'-'.join(map(str, sizes))} batch {batch} epoch {epoch + 1}: {times[-1]:.3f} s, test accuracy "
              f"{accuracy:.4f}", flush=True)
    return times, accuracy


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer epochs and runs (a smoke test)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_cuda_mlp: torch.cuda.is_available() is False")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}", flush=True)
    xt, yt, xv, yv = load(args.data)
    x, y = torch.tensor(xt, device="cuda"), torch.tensor(yt, device="cuda")
    xv, yv = torch.tensor(xv, device="cuda"), torch.tensor(yv, device="cuda")
    epochs = 1 if args.quick else args.epochs

    times, accuracy = train(x, y, xv, yv, [784, 50, 10], 64, epochs)
    anchor("epoch_default_s", median(times[1:] or times), "s")
    anchor("accuracy_default", accuracy, "")
    wide, _ = train(x, y, xv, yv, [784, 512, 256, 10], 128, 1 if args.quick else 3, cosine=False)
    anchor("epoch_wide_s", median(wide[1:] or wide), "s")

    # The lessons' full-batch pass: 784-50-1, MSE on the label, forward and backward (with the input gradient).
    model = mlp([784, 50, 1])
    xg = x.clone().requires_grad_(True)
    target = y.float()
    def pass_():
        model.zero_grad()
        xg.grad = None
        loss = ((model(xg)[:, 0] - target) ** 2).mean()
        loss.backward()
    pass_()
    anchor("fullbatch_ms", 1e3 * median([synced(pass_) for _ in range(5)]), "ms")

    for name, (m, n, k) in [("gemm_1024_gflops", (1024, 1024, 1024)), ("gemm_fwd_60000x50x784_gflops", (60000, 50, 784))]:
        a, b = torch.randn(m, k, device="cuda"), torch.randn(k, n, device="cuda")
        a @ b
        t = median([synced(lambda: a @ b) for _ in range(7)])
        anchor(name, 2 * m * n * k / t / 1e9, "GFLOP/s")


if __name__ == "__main__":
    main()
