"""An existing spikingjelly model switched to NA with na_cuda.nn.convert (pip install --no-deps spikingjelly loguru).

The converted neurons (na_cuda.nn.LIF) start every call from rest, but the loop still calls
functional.reset_net(model) after each batch, as for any spikingjelly model: other stateful modules keep state
between calls until it (here layer.Dropout, whose mask is drawn once per sequence and kept until reset_net; without
the reset every batch would reuse the first mask, and a batch of another size fails with a size mismatch).
na_cuda.nn.LIF.reset() is a no-op, so reset_net costs nothing for the converted neurons.
"""

import os

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

import na_cuda

T, STEPS = 6, int(os.environ.get("EXAMPLE_BATCHES", "20"))
torch.manual_seed(0)


def lif() -> nn.Module:
    return neuron.LIFNode(tau=2.0, decay_input=False, surrogate_function=surrogate.ATan(), step_mode="m")


model = nn.Sequential(  # a spikingjelly CNN as it would be written for STBP
    layer.SeqToANNContainer(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
    lif(),
    layer.SeqToANNContainer(nn.MaxPool2d(2), nn.Flatten()),
    layer.Dropout(0.2, step_mode="m"),  # one mask per sequence, kept until functional.reset_net
    layer.SeqToANNContainer(nn.Linear(8 * 14 * 14, 10)),
    lif(),
)
# every LIFNode -> na_cuda.nn.LIF(output="spike", ...); verbose=True prints what was converted
model = na_cuda.nn.convert(model, method="na", verbose=True)

opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(STEPS):
    x = torch.rand(T, 32, 1, 28, 28)  # random stand-in data: [T, B, C, H, W]
    y = torch.randint(0, 10, (32,))
    rate = model(x).mean(0)  # firing rate per class [B, 10]
    loss = nn.functional.cross_entropy(rate * 5.0, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    functional.reset_net(model)  # new Dropout masks for the next batch (the LIFs have no state to reset)
    print(f"step {step}: loss {loss.item():.4f}")
