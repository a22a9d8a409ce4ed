"""Prints the table of a benchmark run from its results.tsv (tool, phase,
wall s, CPU s, peak RSS KiB): per phase, cairn's wall time, each peer's time
as a multiple of it, and cairn's peak RSS against restic's. A `reposize`
phase holds repository bytes in the wall column. A phase measured in
several rounds counts with the median of each figure, and the range of
restic's time over cairn's, round by round, follows the table."""
import collections
import statistics
import sys

runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    tool, phase, wall, cpu, rss = line.rstrip("\n").split("\t")
    runs[phase][tool].append((float(wall), float(cpu), int(rss)))


def median(figures):
    return tuple(statistics.median(column) for column in zip(*figures))


rows = {phase: {tool: median(f) for tool, f in tools.items()} for phase, tools in runs.items()}

print()
print(f"{'phase':<18} {'cairn wall':>11} {'restic x':>9} {'borg x':>8} {'cp x':>6} "
      f"{'cairn RSS MiB':>14} {'RSS vs restic':>14}")
for phase, r in rows.items():
    if "cairn" not in r:
        continue
    c = r["cairn"]
    if phase == "reposize":
        sizes = "".join(f" {c[0] / r[p][0]:>8.2f}" for p in ("restic", "borg") if p in r)
        print(f"{phase:<18} {c[0] / 2**20:>9.1f}Mi{sizes}   (size ratio cairn/peer)")
        continue

    def ratio(tool):
        return f"{r[tool][0] / c[0]:.2f}" if tool in r and c[0] else "-"

    rss_ratio = f"{c[2] / r['restic'][2]:.2f}" if "restic" in r else "-"
    print(f"{phase:<18} {c[0]:>10.2f}s {ratio('restic'):>9} {ratio('borg'):>8} {ratio('cp'):>6} "
          f"{c[2] / 1024:>14.0f} {rss_ratio:>14}")
spreads = []
for phase, tools in runs.items():
    paired = list(zip(tools.get("restic", []), tools.get("cairn", [])))
    if len(paired) > 1 and phase != "reposize":
        ratios = sorted(r[0] / c[0] for r, c in paired if c[0])
        spreads.append(f"{phase} {ratios[0]:.2f}-{ratios[-1]:.2f}")
if spreads:
    rounds = max(len(t) for tools in runs.values() for t in tools.values())
    print(f"medians of {rounds} rounds; restic x per round: " + ", ".join(spreads))
if "tar" in rows.get("physical", {}):
    print(f"tar|zstd -3 -T2 of the corpus: {rows['physical']['tar'][0]:.2f}s")
print("ratios are peer time / cairn time: above 1 means cairn is faster")
