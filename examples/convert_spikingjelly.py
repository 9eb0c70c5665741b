"""An existing spikingjelly model switched to NA with na_cuda.nn.convert (pip install --no-deps spikingjelly loguru).

The spikingjelly model must be reset (functional.reset_net) before every forward; the converted one starts every
call from rest by itself, so the loop below needs no reset.
"""

import os

import torch
from spikingjelly.activation_based import layer, neuron, surrogate
from torch import nn

import na_cuda

T, STEPS = 6, int(os.environ.get("EXAMPLE_BATCHES", "20"))
torch.manual_seed(0)


def lif() -> nn.Module:
    return neuron.LIFNode(tau=2.0, decay_input=False, surrogate_function=surrogate.ATan(), step_mode="m")


model = nn.Sequential(  # a spikingjelly CNN as it would be written for STBP
    layer.SeqToANNContainer(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
    lif(),
    layer.SeqToANNContainer(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10)),
    lif(),
)
model = na_cuda.nn.convert(model, method="na")  # every LIFNode -> na_cuda.nn.LIF(output="spike", ...)
print(model)

opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(T, 32, 1, 28, 28)  # random stand-in data: [T, B, C, H, W]
y = torch.randint(0, 10, (32,))
for step in range(STEPS):
    rate = model(x).mean(0)  # firing rate per class [B, 10]
    loss = nn.functional.cross_entropy(rate * 5.0, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step {step}: loss {loss.item():.4f}")
