"""Writes the held-out test items of ../shared/anchors/torch_ncf.py, with the 99 negatives that
script draws, in He et al.'s `*.test.negative` format (`(USER,ITEM)` then negative item ids,
tab-separated, original MovieLens ids), so that

    intent train ncf --train u.data --out DIR --test-negatives-file FILE

is evaluated on exactly the reference's test set (the same split: latest interaction per user,
ties broken by item id; the same negatives for the same seed).

usage: python3 scripts/ncf_reference_negatives.py U_DATA OUT [SEED=2025]
"""
import random
import sys


def main(path, out, seed):
    # The reference seeds Python's `random` and then draws the negatives before anything else
    # uses it; the same calls in the same order give the same items.
    random.seed(seed)
    rows = [tuple(map(int, line.split("\t"))) for line in open(path)]
    users = sorted({u for u, *_ in rows})
    items = sorted({i for _, i, *_ in rows})
    user_index = {u: k for k, u in enumerate(users)}
    item_index = {i: k for k, i in enumerate(items)}
    by_user = {}
    for u, i, _rating, ts in rows:
        by_user.setdefault(user_index[u], []).append((ts, item_index[i]))
    test, seen = {}, {}
    for u, history in by_user.items():
        history.sort()
        test[u] = history[-1][1]
        seen[u] = {i for _, i in history[:-1]}
    with open(out, "w") as f:
        for u in range(len(users)):
            pool, negatives = seen[u] | {test[u]}, set()
            while len(negatives) < 99:
                j = random.randrange(len(items))
                if j not in pool:
                    negatives.add(j)
            f.write(f"({users[u]},{items[test[u]]})\t" + "\t".join(str(items[j]) for j in negatives) + "\n")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 2025)
