#!/usr/bin/env python3
"""One cpu_per_host.png / wall.png from several bench/run result directories, each tool renamed
so that different builds measured in different runs get lines of their own.

    bench/plot_builds.py OUTDIR 'SUBDIR:TOOL=LABEL,TOOL=LABEL' ...

Reads OUTDIR/SUBDIR/results.csv, keeps the tools named (renamed to LABEL), writes
OUTDIR/results.csv and the plots (bench/report.py's, gnuplot). Example (bench/results/cpu14):

    bench/plot_builds.py bench/results/cpu14 \\
        'small:sshmux-openssl=sshmux (+ libssh 0010),sshmux-baseline=sshmux main (before),pdsh=pdsh' \\
        'large:sshmux-openssl=sshmux (+ libssh 0010)' \\
        'a:sshmux-openssl=sshmux (index + ssh dir; run a)'

Labels cannot contain ',' or '='.
"""
import csv
import os
import sys

import report


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, rows = sys.argv[1], []
    for spec in sys.argv[2:]:
        sub, mapping = spec.split(":", 1)
        names = dict(m.split("=", 1) for m in mapping.split(","))
        for r in report.load_csv(os.path.join(out, sub, "results.csv")):
            if r["tool"] in names:
                rows.append(dict(r, tool=names[r["tool"]]))
    if not rows:
        sys.exit("plot_builds: no rows")
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        # runs from different revisions of bench/run carry different columns: keep them all
        fields = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    print(", ".join(report.plots(rows, out)))


if __name__ == "__main__":
    main()
