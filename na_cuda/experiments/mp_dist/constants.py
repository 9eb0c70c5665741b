"""Settings of the MP-distance experiment. See docs/results.md."""

PAPER_RANK1 = 0.63  # sec. 4.1: transfers into the top-1 nearest region by MP-dist
DEFAULTS = dict(iterations=100, T=10, seed=0, batch_size=64, sample=2048)
MAX_T = 14  # the transfer matrix has 4^T entries (T = 14: 268 M int64 = 2 GiB)
_CHUNK = 2048  # neurons per batched key-neighbour solve ([chunk, segments, T] float64 work arrays)
_LOG_BINS = (-6.0, 1.5, 75)  # log10 d_MP histogram: lowest edge, highest edge, number of bins
