"""A NIR graph in, an NA-trained NIR graph out: load a .nir file, train it with NA on MNIST, write it back.

    python examples/from_nir.py [graph.nir] [--out trained.nir]

graph.nir is any NIR graph of the supported nodes (docs/nir.md), e.g. one written by snnTorch
(`nir.write("graph.nir", snntorch.export_nir.export_to_nir(net, sample))`) or Norse. Without one, the example
writes the paper's MNIST network (15C5-P2-40C5-P2-300-10) as a stand-in. The input must be [1, 28, 28] and the output
10 classes; the output layer's PSCs (a LIF followed by an LI, which from_nir fuses into na_cuda's LIF with
output="psc") feed the van Rossum loss. Needs `pip install na_cuda[nir]`. EXAMPLE_BATCHES limits the batches.
"""

import argparse
import os
import tempfile
from pathlib import Path

import nir
import torch

import na_cuda
from na_cuda import data, losses, models
from na_cuda import nir as na_nir

T, TAU_S, BATCH, DT = 5, 2.0, 64, 1e-4
LIMIT = int(os.environ.get("EXAMPLE_BATCHES", "0")) or None  # None: one whole epoch
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("graph", nargs="?", help="a .nir file (default: the paper's MNIST network, written here)")
parser.add_argument("--out", default=None, help="where to write the trained graph (default: next to the input)")
args = parser.parse_args()
torch.manual_seed(0)

path = Path(args.graph) if args.graph else Path(tempfile.mkdtemp()) / "mnist_paper.nir"
if not args.graph:  # the stand-in for a graph exported by another framework
    source = models.build_model("mnist", (1, 28, 28), method="na", tau_m=5.0, tau_s=TAU_S)
    nir.write(path, na_nir.to_nir(source, torch.zeros(T, 1, 1, 28, 28), dt=DT))

net = na_nir.from_nir(path, method="na", dt=DT)  # the graph's neurons as na_cuda.nn.LIF, trained with NA
na_cuda.nn.enable_grad_rescale(net)  # the released code's layer-wise rescale (docs/algorithm.md section 4)
print(net.report)
train, test = data.load("mnist", train=True), data.load("mnist", train=False)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)


def encode(x: torch.Tensor) -> torch.Tensor:
    """Images [B, 1, 28, 28] -> [T, B, 1, 28, 28], the released code's constant current (PSC-filtered)."""
    return data.encode_static(data.normalize(x, "mnist"), T=T, tau_s=TAU_S)


net.train()
order = torch.randperm(len(train))
for i, start in enumerate(range(0, len(train), BATCH)):
    if LIMIT is not None and i >= LIMIT:
        break
    x, y = train.batch(order[start : start + BATCH])
    loss = losses.van_rossum(net(encode(x)), losses.na_desired_spikes(y, 10, T), TAU_S)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i % 100 == 0:
        print(f"batch {i}: loss {loss.item():.4f}")

net.eval()
correct = seen = 0
with torch.no_grad():
    for i, start in enumerate(range(0, len(test), 1000)):
        if LIMIT is not None and i >= LIMIT:
            break
        x, y = test.batch(torch.arange(start, min(start + 1000, len(test))))
        correct += (losses.spike_count_predictions(net(encode(x))) == y).sum().item()
        seen += len(y)
print(f"test accuracy {100 * correct / seen:.2f} % on {seen} images")

out = Path(args.out) if args.out else path.with_name(path.stem + "_trained.nir")
sample = encode(test.batch(torch.arange(8))[0])
nir.write(out, na_nir.to_nir(net, sample, dt=DT))  # the trained graph, for the framework or chip it came from
back = na_nir.from_nir(out, method="na", dt=DT)
with torch.no_grad():
    same = torch.equal(back(sample), net(sample))
print(f"wrote {out}; read back: the same outputs bit for bit: {same}")
assert same
