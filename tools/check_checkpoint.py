"""Loads a clnn checkpoint (an MLP, a CNN: any architecture it records) into the equivalent torch.nn.Sequential, built
from its `clnn.architecture`, with safetensors + load_state_dict(strict=True), and prints its Fashion-MNIST (or any
MNIST-format) test accuracy in evaluation mode, to compare with `clnn eval`.
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
activations = {"relu": torch.nn.ReLU, "leaky-relu": torch.nn.LeakyReLU, "tanh": torch.nn.Tanh,
               "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}


def split_entries(text):
    """Entries at commas outside parentheses: conv2d(1,32,3,p=1) is one."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    return out + [text[start:]] if text[start:] else out


def pair(value):
    h, _, w = value.partition("x")
    return (int(h), int(w or h))


def module(entry):
    """The torch module of one clnn.architecture entry (LayerSpec's description); None for image(C,H,W)."""
    name, _, rest = entry.partition("(")
    args = [a for a in rest.rstrip(")").split(",") if a] if rest else []
    pos = [a for a in args if "=" not in a]
    opt = dict(a.split("=", 1) for a in args if "=" in a)
    if name == "image":
        return None
    if name == "linear":
        return torch.nn.Linear(int(pos[0]), int(pos[1]))
    if name == "conv2d":
        return torch.nn.Conv2d(int(pos[0]), int(pos[1]), pair(pos[2]), stride=pair(opt.get("s", "1")),
                               padding=pair(opt.get("p", "0")), dilation=pair(opt.get("d", "1")),
                               bias=opt.get("bias", "true") in ("true", "1"))
    if name in ("batchnorm1d", "batchnorm2d"):
        kind = torch.nn.BatchNorm2d if name == "batchnorm2d" else torch.nn.BatchNorm1d
        return kind(int(pos[0]), eps=float(opt.get("eps", 1e-5)), momentum=float(opt.get("momentum", 0.1)))
    if name == "maxpool2d":
        k = pair(pos[0])
        return torch.nn.MaxPool2d(k, stride=pair(opt["s"]) if "s" in opt else k, padding=pair(opt.get("p", "0")),
                                  dilation=pair(opt.get("d", "1")))
    if name == "avgpool2d":
        k = pair(pos[0])
        return torch.nn.AvgPool2d(k, stride=pair(opt["s"]) if "s" in opt else k, padding=pair(opt.get("p", "0")))
    if name == "adaptiveavgpool2d":
        return torch.nn.AdaptiveAvgPool2d(int(pos[0]))
    if name == "dropout":
        return torch.nn.Dropout(float(pos[0]))
    if name == "flatten":
        return torch.nn.Flatten()
    return activations[name]()


if "clnn.architecture" in meta:
    # One entry per nn.Sequential index (image(C,H,W) takes none: it says how the flat rows are read).
    entries = split_entries(meta["clnn.architecture"])
else:  # older checkpoints: an MLP of the sizes with one hidden activation
    sizes = [int(s) for s in meta["clnn.sizes"].split(",")]
    act = meta.get("clnn.activation", "relu")
    entries = []
    for i in range(len(sizes) - 1):
        entries += ([act] if i else []) + [f"linear({sizes[i]},{sizes[i + 1]})"]
image = next((tuple(int(v) for v in e[6:-1].split(",")) for e in entries if e.startswith("image(")), None)
model = torch.nn.Sequential(*[m for m in map(module, entries) if m is not None])
model.load_state_dict(load_file(path))  # strict: every name and shape must match (batch norms' statistics too)
model.eval()

def idx(name):
    p = os.path.join(data, name)
    raw = gzip.open(p + ".gz").read() if os.path.exists(p + ".gz") else open(p, "rb").read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)

x = idx("t10k-images-idx3-ubyte").astype(np.float32) / 255
x = x.reshape((-1,) + image) if image else x.reshape(len(x), -1)
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
