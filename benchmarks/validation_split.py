"""How honest is the out-of-fold validation on a dated table? Random rows against time order, garment data.

The model is trained on the earliest 900 records (by date) of the garment table and scored on the
297 that follow; its own validation metrics are set beside that later-period score, once with the
networks validated on random rows (`split="random"`) and once in time order (`split="auto"`, which
picks the table's date). A small setup (2 members, 32 hidden units, 30 epochs) keeps it to a minute.

    .venv/bin/python benchmarks/validation_split.py            # writes benchmarks/results/validation_split.json
    .venv/bin/python benchmarks/validation_split.py --bags 2   # fewer networks
"""

from __future__ import annotations

import argparse
import warnings

import pandas as pd
from _common import data_file, limit_threads, machine, print_table, stopwatch, versions, write_json

TARGET = "actual_productivity"
TRAIN_ROWS = 900


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bags", type=int, default=None, help="cross-fitted networks (default: the model's own)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    limit_threads()
    from shopfloor import TabularModel
    from shopfloor.data.tables import read_table
    from shopfloor.errors import ShopfloorWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShopfloorWarning)
        frame = read_table(data_file("garment-productivity/garments_worker_productivity.csv"))
    frame = frame.iloc[pd.to_datetime(frame["date"], format="mixed").argsort(kind="stable")].reset_index(drop=True)
    train, later = frame.iloc[:TRAIN_ROWS], frame.iloc[TRAIN_ROWS:]
    runs, rows = {}, []
    for split in ("random", "auto"):
        with stopwatch() as seconds, warnings.catch_warnings():
            warnings.simplefilter("ignore", ShopfloorWarning)
            model = TabularModel(TARGET, split=split, bags=args.bags, members=2, hidden=32, max_epochs=30, lr=4e-3,
                                 seed=args.seed, progress=False).fit(train)
        valid, scored = model.validation_metrics_, model.evaluate(later)
        runs[split] = {"split": model.split_.words(), "bags": model.bags_, "validation": valid, "later": scored,
                       "train_seconds": seconds()}
        rows.append([model.split_.words(), f"{valid['rmse']:.4f}", f"{scored['rmse']:.4f}",
                     f"{valid['r2']:.3f}", f"{scored['r2']:.3f}"])
    print_table(f"garment: validation vs the {len(later)} later records", ["split", "valid RMSE", "later RMSE",
                                                                           "valid R2", "later R2"], rows)
    write_json("validation_split", {"protocol": __doc__.split("\n\n")[1], "train_rows": TRAIN_ROWS,
                                    "later_rows": len(later), "runs": runs, "machine": machine(),
                                    "versions": versions(("shopfloor", "torch", "pandas", "numpy"))})


if __name__ == "__main__":
    main()
