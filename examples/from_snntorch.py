"""An snnTorch network, its Leaky neurons replaced by their exact na_cuda equivalents with LIF.from_snntorch.

snnTorch's tutorial network calls each Leaky once per time step in a Python loop and carries `mem`; the na_cuda
version runs the same layers on the whole window [T, B, ...] at once. With method="stbp" it computes snnTorch's own
forward and gradient (checked below on the first batch); method="na" would train the same neurons with NA.
The loss is the tutorials' one, on the output layer's membrane potential (output="membrane", an STBP option).
Needs snnTorch (pip install --no-deps snntorch==1.0.0).
"""

import os

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn

import na_cuda

T, STEPS = 25, int(os.environ.get("EXAMPLE_BATCHES", "20"))
torch.manual_seed(0)


class SnnTorchNet(nn.Module):  # the snnTorch tutorial's network
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 100), nn.Linear(100, 10)
        self.lif1 = snn.Leaky(beta=0.95, learn_beta=True, spike_grad=surrogate.fast_sigmoid(slope=25))
        self.lif2 = snn.Leaky(beta=0.95)  # reset_mechanism="subtract", atan surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [T, B, 784] -> output membrane [T, B, 10]
        mem1, mem2, mems = torch.zeros(x.shape[1], 100), torch.zeros(x.shape[1], 10), []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            _, mem2 = self.lif2(self.fc2(spk1), mem2)
            mems.append(mem2)
        return torch.stack(mems)


src = SnnTorchNet()
net = nn.Sequential(  # the same layers over the whole window
    na_cuda.nn.SeqToANN(src.fc1),
    na_cuda.nn.LIF.from_snntorch(src.lif1, method="stbp"),
    na_cuda.nn.SeqToANN(src.fc2),
    na_cuda.nn.LIF.from_snntorch(src.lif2, method="stbp", output="membrane"),
)
print(net)

x = (torch.rand(T, 64, 784) < 0.2).float()  # random stand-in spike input [T, B, 784]
y = torch.randint(0, 10, (64,))
ref = src(x)
ref_loss = nn.functional.cross_entropy(ref.sum(0), y)
ref_loss.backward()
want = [src.fc1.weight.grad.clone(), src.lif1.beta.grad.clone()]
src.zero_grad()
out = net(x)
loss = nn.functional.cross_entropy(out.sum(0), y)
loss.backward()
got = [src.fc1.weight.grad, net[1].beta.grad]  # fc1 is shared; beta is the LIF's own copy
err = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(got, want))
print(f"same membrane traces as snnTorch: {torch.equal(out, ref)}; loss {loss.item():.6f} vs {ref_loss.item():.6f}")
print(f"largest relative gradient difference (fc1.weight, lif1.beta), float32: {err:.1e}")

opt = torch.optim.Adam(net.parameters(), lr=5e-4)
for step in range(STEPS):
    loss = nn.functional.cross_entropy(net(x).sum(0), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step {step}: loss {loss.item():.4f}")
