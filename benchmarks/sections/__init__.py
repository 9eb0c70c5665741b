"""The sections of the benchmark suite (benchmarks/run.py), one module each: `op` (the neuron op), `peer`
(spikingjelly), `e2e` (one MNIST training step), `memory` (bytes saved for backward); `common` holds what they
share. Each `bench_*` function returns its section's JSON-ready dict, including `timed`: the spread of every timed
variant, which the noise check (benchmarks/reliability.py) reads."""
