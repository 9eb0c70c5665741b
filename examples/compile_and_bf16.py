"""torch.compile (fullgraph) and bfloat16 autocast on the CPU, with NA and its layer-wise gradient rescaling.

na_cuda's ops are registered with torch.library, so dynamo traces them into one graph; under autocast the
linear layers run in bfloat16 and the LIF computes in float32 (its half-type rule). EXAMPLE_BATCHES limits steps.
"""

import os

import torch
from torch import nn

import na_cuda
from na_cuda.nn import LIF, SeqToANN

T, STEPS = 5, int(os.environ.get("EXAMPLE_BATCHES", "10"))
torch.manual_seed(0)
net = nn.Sequential(
    SeqToANN(nn.Linear(100, 256)),
    LIF(),
    SeqToANN(nn.Linear(256, 10)),
    LIF(),
)
na_cuda.nn.enable_grad_rescale(net)  # compiles too: its state is tensors, not Python numbers
compiled = torch.compile(net, fullgraph=True)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

x = torch.rand(T, 32, 100) * 2.0
target = na_cuda.losses.na_desired_spikes(torch.randint(0, 10, (32,)), 10, T)
for step in range(STEPS):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = compiled(x)  # [T, B, 10] output PSCs, bfloat16
    loss = na_cuda.losses.van_rossum(out.float(), target, 2.0)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step {step}: loss {loss.item():.4f} (output dtype {out.dtype})")
