"""A PLIF network (learnable membrane time constants, Fang et al. 2021) trained with NA on MNIST.

Every LIF layer has a learnable time constant, parametrised as spikingjelly's ParametricLIFNode does:
1/tau_m = sigmoid(w), w initialised from tau_m (learn_decay="sigmoid"); the first layer learns one per channel, the
others one per layer. NA computes dL/dw inside its backward kernel (docs/algorithm.md §12). Data:
na_cuda.data.load("mnist") ($NA_CUDA_DATA, else ~/.cache/na_cuda); EXAMPLE_BATCHES limits the batches (CI: 3).
"""

import os

import torch
from torch import nn

from na_cuda import data, losses
from na_cuda.nn import LIF, SeqToANN, enable_grad_rescale

T, TAU_S, BATCH = 5, 2.0, 64
LIMIT = int(os.environ.get("EXAMPLE_BATCHES", "0")) or 200
torch.manual_seed(0)


def plif(**kw) -> LIF:
    return LIF(tau_m=2.0, tau_s=TAU_S, method="na", learn_decay="sigmoid", **kw)


net = nn.Sequential(
    SeqToANN(nn.Conv2d(1, 16, 5, bias=False)),
    plif(decay_shape=(16, 1, 1)),  # one time constant per channel
    SeqToANN(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 12 * 12, 200, bias=False)),
    plif(),
    SeqToANN(nn.Linear(200, 10, bias=False)),
    plif(),
)
enable_grad_rescale(net)  # the released NA code's layer-wise gradient rescaling (spec §4)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
train = data.load("mnist", train=True)
order = torch.randperm(len(train))
for i, start in enumerate(range(0, len(train), BATCH)):
    if i >= LIMIT:
        break
    x, y = train.batch(order[start : start + BATCH])
    out = net(data.encode_static(data.normalize(x, "mnist"), T=T, tau_s=TAU_S))  # output PSCs [T, B, 10]
    loss = losses.van_rossum(out, losses.na_desired_spikes(y, 10, T), TAU_S)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i % 50 == 0 or i == LIMIT - 1:
        acc = (losses.spike_count_predictions(out) == y).float().mean().item()
        taus = [f"{(1 / (1 - m.decay_values())).mean().item():.3f}" for m in net if isinstance(m, LIF)]
        print(f"batch {i}: loss {loss.item():.4f}, batch accuracy {100 * acc:.1f} %, mean tau_m per layer {taus}")
