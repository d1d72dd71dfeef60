"""Trains a small model in PyTorch, saves it the ordinary way (safetensors' save_file(model.state_dict(), ...), no clnn
metadata), and checks that `clnn eval` reports the test accuracy PyTorch computed (to 0.1 point) — for the model as
saved in F32, and again saved in half precision (F16, converted on load) and as bfloat16 — then fine-tunes it with
`clnn train --init-from`; then the same for a CNN with batch norm (`--arch cnn-bn`).
Usage: python3 tools/check_pytorch_model.py [CLNN_BINARY] [DATA_DIR]   (needs: pip install torch safetensors numpy)
Defaults: .build/release/clnn, /usr/share/datasets/fashion-mnist. Exits 1 when an accuracy disagrees."""
import gzip, os, re, subprocess, sys, tempfile
import numpy as np
import torch
from safetensors.torch import save_file

clnn = sys.argv[1] if len(sys.argv) > 1 else ".build/release/clnn"
data = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"

def idx(name):
    p = os.path.join(data, name)
    raw = gzip.open(p + ".gz").read() if os.path.exists(p + ".gz") else open(p, "rb").read()
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)

xtr = torch.from_numpy(idx("train-images-idx3-ubyte").astype(np.float32) / 255)   # [n, 28, 28]
ytr = torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
xte = torch.from_numpy(idx("t10k-images-idx3-ubyte").astype(np.float32) / 255)
yte = torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))
mean, std = xtr.mean().item(), xtr.std(unbiased=False).item()   # what clnn computes from the training set
xtr, xte = (xtr - mean) / std, (xte - mean) / std

torch.manual_seed(0)
# nn.Flatten at index 0 (no parameters, read as identity), then Linear, GELU, Linear, GELU, Linear.
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.GELU(), torch.nn.Linear(64, 32),
                            torch.nn.GELU(), torch.nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
for epoch in range(2):
    perm = torch.randperm(len(xtr))
    for i in range(0, len(xtr), 128):
        b = perm[i:i + 128]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xtr[b]), ytr[b]).backward()
        opt.step()

def accuracy(m, dtype):
    with torch.no_grad():
        return (m.to(dtype)(xte.to(dtype)).float().argmax(1) == yte).float().mean().item()

failed = False
folder = tempfile.mkdtemp()
for dtype, label in [(torch.float32, "F32"), (torch.float16, "F16"), (torch.bfloat16, "BF16")]:
    m = model.to(dtype)
    path = os.path.join(folder, f"model-{label}.safetensors")
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, path)
    expected = accuracy(m.float() if dtype == torch.float32 else m, dtype)
    if dtype != torch.float32:
        # clnn computes in F32 from the converted weights: compare with PyTorch doing the same.
        expected = accuracy(torch.nn.Sequential(*[l for l in m]).float(), torch.float32)
    model = model.float()
    out = subprocess.run([clnn, "eval", "--model", path, "--data", data, "--device", "cpu", "--activation", "gelu"],
                         capture_output=True, text=True)
    print(out.stderr.strip())
    got = re.search(r"test acc ([0-9.]+)", out.stdout)
    if out.returncode or not got:
        print(out.stdout, out.stderr)
        sys.exit(f"clnn eval failed on the {label} model")
    ok = abs(float(got.group(1)) - expected) <= 0.001
    failed |= not ok
    print(f"{label}: torch {torch.__version__} test acc {expected:.4f}, clnn eval {float(got.group(1)):.4f}  "
          f"{'agree' if ok else 'DISAGREE'}")

tuned = os.path.join(folder, "tuned.safetensors")
out = subprocess.run([clnn, "train", "--init-from", os.path.join(folder, "model-F32.safetensors"), "--activation", "gelu",
                      "--optimizer", "adam", "--lr", "5e-4", "--epochs", "1", "--data", data, "--device", "cpu",
                      "--save", tuned], capture_output=True, text=True)
print(out.stdout.strip().splitlines()[-2] if out.returncode == 0 else out.stderr)
failed |= out.returncode != 0

# A CNN with batch norm (shared/anchors/cnn.py's, --arch cnn-bn): 300 steps in PyTorch, saved the ordinary way
# (running statistics and num_batches_tracked included), evaluated and fine-tuned by clnn with the architecture told.
def block(cin, cout):
    return [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
cnn = torch.nn.Sequential(*block(1, 32), *block(32, 64), torch.nn.Flatten(), torch.nn.Linear(3136, 128),
                          torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.SGD(cnn.parameters(), lr=0.05, momentum=0.9)
perm = torch.randperm(len(xtr))
for i in range(300):
    b = perm[i * 64:(i + 1) * 64]
    opt.zero_grad()
    torch.nn.functional.cross_entropy(cnn(xtr[b].view(-1, 1, 28, 28)), ytr[b]).backward()
    opt.step()
cnn.eval()
with torch.no_grad():
    expected = (cnn(xte.view(-1, 1, 28, 28)).argmax(1) == yte).float().mean().item()
path = os.path.join(folder, "cnn-bn.safetensors")
save_file({k: v.contiguous() for k, v in cnn.state_dict().items()}, path)
out = subprocess.run([clnn, "eval", "--model", path, "--arch", "cnn-bn", "--data", data, "--device", "cpu"],
                     capture_output=True, text=True)
got = re.search(r"test acc ([0-9.]+)", out.stdout)
if out.returncode or not got:
    print(out.stdout, out.stderr)
    sys.exit("clnn eval --arch cnn-bn failed on the PyTorch CNN")
ok = abs(float(got.group(1)) - expected) <= 0.001
failed |= not ok
print(f"cnn-bn: torch {torch.__version__} test acc {expected:.4f}, clnn eval {float(got.group(1)):.4f}  "
      f"{'agree' if ok else 'DISAGREE'}")
out = subprocess.run([clnn, "train", "--init-from", path, "--arch", "cnn-bn", "--momentum", "0.9", "--lr", "0.01",
                      "--max-steps", "50", "--data", data, "--device", "cpu", "--save", tuned],
                     capture_output=True, text=True)
print(out.stdout.strip().splitlines()[-2] if out.returncode == 0 else out.stderr)
failed |= out.returncode != 0
sys.exit(1 if failed else 0)
