#!/usr/bin/env python3
"""Deterministic benchmark corpus and mutation for benches/e2e.sh.

usage: corpus.py generate DIR [SCALE]   # SCALE 1.0 = about 1.5 GiB
       corpus.py mutate DIR             # deterministic ~5% change
       corpus.py small-files DIR COUNT  # the scale scenario
Everything derives from fixed seeds, so every run and every machine gets
the same bytes.
"""
import hashlib
import os
import random
import sys

MiB = 1024 * 1024


def stream(seed, n):
    """n pseudo-random bytes from a seed (SHAKE-256: fast, portable)."""
    return hashlib.shake_256(seed.encode()).digest(n)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


WORDS = ("the quick brown fox jumps over lazy dog backup chunk pack index "
         "snapshot restore verify prune forget tree blob key repository "
         "def fn let mut return if else for while struct impl pub use").split()


def text(rng, n):
    out, size = [], 0
    while size < n:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def generate(root, scale):
    rng = random.Random(1)
    # Tens of thousands of small source and text files.
    for i in range(int(30000 * scale)):
        d = f"src/p{i % 97}/m{i % 13}"
        size = int(rng.lognormvariate(8.3, 1.0)) + 10
        write(f"{root}/{d}/file{i}.rs", text(rng, min(size, 200_000)))
    # Compressible logs.
    for i in range(3):
        lines = []
        n = int(100 * MiB * scale)
        size = 0
        j = 0
        while size < n:
            line = f"2026-11-{1 + j % 28:02d}T{j % 24:02d}:{j % 60:02d}:{(j * 7) % 60:02d} host{j % 5} app[{j % 999}]: request {j} served in {rng.randint(1, 900)}ms path=/api/v1/item/{rng.randint(1, 99999)}\n"
            lines.append(line)
            size += len(line)
            j += 1
        write(f"{root}/logs/app{i}.log", "".join(lines).encode()[:n])
    # Incompressible media.
    for i in range(3):
        write(f"{root}/media/video{i}.mp4", stream(f"media{i}", int(100 * MiB * scale)))
    # A VM-image-like file: random blocks between zero regions.
    img = bytearray(int(300 * MiB * scale))
    for k in range(0, len(img), 4 * MiB):
        if (k // (4 * MiB)) % 3 != 0:
            block = stream(f"vm{k}", min(2 * MiB, len(img) - k))
            img[k:k + len(block)] = block
    write(f"{root}/vm/disk.img", bytes(img))
    # A tar-like archive of "binaries": semi-compressible.
    parts = []
    for i in range(int(200 * scale)):
        parts.append(stream(f"bin{i}", 512 * 1024) + text(rng, 512 * 1024))
    write(f"{root}/archive/binaries.tar", b"".join(parts))


def mutate(root):
    rng = random.Random(5)
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            files.append(os.path.join(d, n))
    files.sort()
    # Appends to logs.
    for p in [f for f in files if f.endswith(".log")]:
        with open(p, "ab") as f:
            f.write(text(rng, 4 * MiB))
    # In-place edits and new/deleted small files.
    small = [f for f in files if f.endswith(".rs")]
    for p in rng.sample(small, len(small) // 20):
        with open(p, "r+b") as f:
            f.seek(0)
            f.write(b"// edited\n")
    for p in rng.sample(small, len(small) // 100):
        os.remove(p)
    for i in range(len(small) // 100):
        write(f"{root}/src/new/n{i}.rs", text(rng, 3000))
    # An insertion that shifts a large file.
    big = f"{root}/archive/binaries.tar"
    with open(big, "rb") as f:
        data = f.read()
    with open(big, "wb") as f:
        f.write(data[:1000] + b"inserted bytes shift everything after them" + data[1000:])
    # In-place change inside the VM image.
    with open(f"{root}/vm/disk.img", "r+b") as f:
        f.seek(8 * MiB)
        f.write(stream("vmedit", 4 * MiB))


def small_files(root, count):
    rng = random.Random(9)
    for i in range(count):
        write(f"{root}/d{i % 500}/f{i}", text(rng, rng.randint(100, 4000)))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "generate":
        generate(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)
    elif cmd == "mutate":
        mutate(sys.argv[2])
    elif cmd == "small-files":
        small_files(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
