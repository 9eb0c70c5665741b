"""A spiking MLP trained with the TET loss (Deng et al. 2022, na_cuda.losses.tet) on scikit-learn's 8x8 digits.

Switch METHOD to "stbp" to train the same network with surrogate-gradient BPTT. EXAMPLE_BATCHES limits the steps.
"""

import os

import torch
from torch import nn

from na_cuda import data, losses
from na_cuda.nn import LIF, SeqToANN

METHOD, T, BATCH = "na", 6, 64
STEPS = int(os.environ.get("EXAMPLE_BATCHES", "300"))
torch.manual_seed(0)

train, test = data.load("digits", train=True), data.load("digits", train=False)
net = nn.Sequential(
    SeqToANN(nn.Flatten(), nn.Linear(64, 128)),
    LIF(method=METHOD, output="psc"),
    SeqToANN(nn.Linear(128, 10)),  # TET reads the logits of every time step [T, B, 10]
)
opt = torch.optim.Adam(net.parameters(), lr=2e-3)

for step in range(STEPS):
    x, y = train.batch(torch.randint(0, len(train), (BATCH,)))
    out = net(x.unsqueeze(0).expand(T, *x.shape) * 2.0)  # the image as a constant input current
    loss = losses.tet(out, y, lamb=0.05)  # (1 - lamb) mean_t CE(O[t], y) + lamb MSE(O, phi)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(f"step {step}: TET loss {loss.item():.4f}")

with torch.no_grad():
    x, y = test.batch(torch.arange(len(test)))
    pred = net(x.unsqueeze(0).expand(T, *x.shape) * 2.0).mean(0).argmax(1)
print(f"test accuracy ({METHOD}): {100 * (pred == y).float().mean().item():.1f} %")
