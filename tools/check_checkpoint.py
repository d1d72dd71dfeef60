"""Loads a clnn checkpoint into the equivalent torch.nn.Sequential with safetensors + load_state_dict and prints its
Fashion-MNIST (or any MNIST-format) test accuracy, to compare with `clnn eval`.
Usage: python3 tools/check_checkpoint.py MODEL.safetensors [DATA_DIR]   (needs: pip install torch safetensors numpy)"""
import gzip, os, re, sys
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1]
data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
with safe_open(path, "pt") as f:
    meta = f.metadata()
sizes = [int(s) for s in meta["clnn.sizes"].split(",")]
activations = {"relu": torch.nn.ReLU, "leaky-relu": torch.nn.LeakyReLU, "tanh": torch.nn.Tanh,
               "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}
if "clnn.architecture" in meta:
    # One entry per nn.Sequential index: linear(IN,OUT) or an activation's name.
    entries = re.findall(r"linear\(\d+,\d+\)|[a-z-]+", meta["clnn.architecture"])
else:  # older checkpoints: an MLP of the sizes with one hidden activation
    act = meta.get("clnn.activation", "relu")
    entries = []
    for i in range(len(sizes) - 1):
        entries += ([act] if i else []) + [f"linear({sizes[i]},{sizes[i + 1]})"]
layers = []
for entry in entries:
    m = re.fullmatch(r"linear\((\d+),(\d+)\)", entry)
    layers.append(torch.nn.Linear(int(m[1]), int(m[2])) if m else activations[entry]())
model = torch.nn.Sequential(*layers)
model.load_state_dict(load_file(path))  # strict: every name and shape must match

def idx(name):
    p = os.path.join(data, name)
    raw = gzip.open(p + ".gz").read() if os.path.exists(p + ".gz") else open(p, "rb").read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)

x = idx("t10k-images-idx3-ubyte").reshape(-1, sizes[0]).astype(np.float32) / 255
y = idx("t10k-labels-idx1-ubyte").astype(np.int64)
x = (x - float(meta["clnn.mean"])) / float(meta["clnn.std"])
with torch.no_grad():
    out = model(torch.from_numpy(x))
if meta["clnn.loss"] == "cross-entropy":
    pred = out.argmax(1).numpy()
    loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y)).item()
else:
    pred = out[:, 0].round().clamp(0, int(meta["clnn.classes"]) - 1).long().numpy()
    loss = ((out[:, 0] - torch.from_numpy(y).float()) ** 2).mean().item()
print(f"torch {torch.__version__}: {','.join(entries)} {meta['clnn.loss']}: "
      f"test loss {loss:.4f}  test acc {(pred == y).mean():.4f}  ({len(y)} examples)")
