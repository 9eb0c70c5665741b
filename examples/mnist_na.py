"""The paper's MNIST network (15C5-P2-40C5-P2-300-10, T = 5) trained with NA in a plain PyTorch loop.

Data: na_cuda.data.load("mnist") reads the IDX files from $NA_CUDA_DATA (else ~/.cache/na_cuda; downloaded with
SHA-256 checks when missing). EXAMPLE_BATCHES limits the batches per epoch (the CI smoke test runs 3).
"""

import os

import torch

import na_cuda
from na_cuda import data, losses, models

T, TAU_S, BATCH, EPOCHS = 5, 2.0, 64, 1
LIMIT = int(os.environ.get("EXAMPLE_BATCHES", "0")) or None  # None: whole epochs
torch.manual_seed(0)

train, test = data.load("mnist", train=True), data.load("mnist", train=False)
net = models.build_model("mnist", (1, 28, 28), method="na", grad_rescale=True, tau_m=5.0, tau_s=TAU_S)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)


def encode(x: torch.Tensor) -> torch.Tensor:
    """Images [B, 1, 28, 28] -> the released code's input [T, B, 1, 28, 28] (a constant current, PSC-filtered)."""
    return data.encode_static(data.normalize(x, "mnist"), T=T, tau_s=TAU_S)


for epoch in range(EPOCHS):
    net.train()
    order = torch.randperm(len(train))
    for i, start in enumerate(range(0, len(train), BATCH)):
        if LIMIT is not None and i >= LIMIT:
            break
        x, y = train.batch(order[start : start + BATCH])
        out = net(encode(x))  # output PSCs [T, B, 10]
        target = losses.na_desired_spikes(y, 10, T)  # an all-ones train for the label neuron
        loss = losses.van_rossum(out, target, TAU_S)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 100 == 0:
            print(f"epoch {epoch} batch {i}: loss {loss.item():.4f}")

    net.eval()
    correct = seen = 0
    with torch.no_grad():
        for i, start in enumerate(range(0, len(test), 1000)):
            if LIMIT is not None and i >= LIMIT:
                break
            x, y = test.batch(torch.arange(start, min(start + 1000, len(test))))
            correct += (losses.spike_count_predictions(net(encode(x))) == y).sum().item()
            seen += len(y)
    print(
        f"epoch {epoch}: test accuracy {100 * correct / seen:.2f} % on {seen} images "
        f"({na_cuda.backends()['auto']['cpu']} backend)"
    )
