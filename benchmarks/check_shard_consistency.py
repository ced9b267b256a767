"""Do full-scale similarity matrices depend on the shard size? (an open question, see docs/benchmarks.md)

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/check_shard_consistency.py

Scores bench_similarity.py's random Flickr30K-test-sized inputs (1,000 × 5,000, R=36, W≤12, D=1024) with
128- and 256-sized shards and prints the largest difference, where it is, and the general path's score
for that pair. On the 2-core dev box (2026-11-27) it printed a max difference of 3.7e-5 over 7,140 pairs,
while smaller inputs agree exactly; not diagnosed yet.
"""
import torch, numpy as np, sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench_similarity import random_inputs, matcher_for
from causmatch.models import ImageEmb, TextEmb, sharded_similarity
regions, words, wmask, lengths = random_inputs(1000, 5000, 36, 12, 1024, "cpu")
m = matcher_for(1024, "cpu")
img = ImageEmb(regions, torch.ones(1000,36,dtype=torch.bool), regions @ regions.transpose(1,2))
txt = TextEmb(words, wmask, words @ words.transpose(1,2), [[]]*5000)
a = sharded_similarity(m, img, txt, shard_images=128, shard_captions=128)
b = sharded_similarity(m, img, txt, shard_images=256, shard_captions=256)
d = np.abs(a-b); i,c = np.unravel_index(d.argmax(), d.shape); print("max", d.max(), i, c, a[i,c], b[i,c], int(wmask[c].sum()), "n>1e-6:", int((d>1e-6).sum()))
with torch.no_grad():
    g = m.similarity(img[slice(i,i+1)], txt[slice(c,c+1)], return_maps=True).score.item()
print("general", g)
