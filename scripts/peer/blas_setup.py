#!/usr/bin/env python3
"""The BLAS and thread set-up of a PyTorch peer, as an expert would make it; imported by the peers.

Debian's PyTorch does its float32 products in OpenBLAS, which picks its kernels ("core") for the
CPU when it is loaded. Two traps make a naive peer slow:

- OpenBLAS 0.3.21 does not know some newer CPUs and falls back to old SSE3 kernels ("Prescott"):
  on an Intel Xeon with AVX-512, PyTorch's 256x784 . 784x256 product took 3.0 ms instead of
  0.46 ms with OPENBLAS_CORETYPE=SkylakeX. Environments also set OPENBLAS_CORETYPE and
  OPENBLAS_L2_SIZE for older builds (Haswell's kernels on a CPU with AVX-512: half the speed).
- torch.set_num_threads(1) does not limit OpenBLAS's own thread pool; OPENBLAS_NUM_THREADS does.

So `configure()` asks OpenBLAS which core it picks with no such variables set
(OPENBLAS_VERBOSE=2 prints "Core: ..."), and where that core uses fewer of the CPU's vector
instructions than /proc/cpuinfo's flags offer, tries the best core types those flags support,
each in a child process that checks a product against float64 and times it; it takes the first
that is correct and faster. It then runs the calling script again (os.execv) with
OPENBLAS_CORETYPE (only where the choice is not OpenBLAS's own) and OPENBLAS_NUM_THREADS set,
since OpenBLAS reads them once, when it is loaded. Call it before importing torch:

    import blas_setup
    blas = blas_setup.configure(blas_threads=1)   # may restart the script
    import torch
    torch.set_num_threads(1)
    ... print(json.dumps({..., **blas_setup.describe(blas, torch_threads=1)}))

The choice is made once per command: D2L_PEER_BLAS_CORE (a JSON object printed by
`python3 scripts/peer/blas_setup.py`) skips the probing, as `npm run bench -- --peer` does.
D2L_PEER_BLAS=as-is leaves the environment as it is (no probing, no restart), to check the choice
against a hand-set one:

    OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=SkylakeX D2L_PEER_BLAS=as-is \
        python3 scripts/peer/bench_torch.py --job mlp

    python3 scripts/peer/blas_setup.py            # the choice on this machine, as JSON
"""
import json
import os
import re
import subprocess
import sys

#: OpenBLAS core names by the widest vector instructions their kernels use (0.3.21's x86-64 cores).
AVX512_CORES = ("SapphireRapids", "Cooperlake", "SkylakeX")
RANK = {**{c: 1 for c in ("Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator")},
        **{c: 2 for c in ("Haswell", "Zen")}, **{c: 3 for c in AVX512_CORES}}
#: Variables that change OpenBLAS's choice of kernels; unset together before asking it for its own.
CORE_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: Largest error of the float32 product relative to the float64 one's largest value that is trusted.
TOLERANCE = 1e-4
CHOICE_VARIABLE = "D2L_PEER_BLAS_CORE"
MARK = "D2L_PEER_BLAS_APPLIED"


def cpu_info():
    """(model name, set of flags) from /proc/cpuinfo; ("unknown", empty) where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown", set()
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return (model.group(1).strip() if model else "unknown"), set(flags.group(1).split() if flags else ())


def candidates(flags, vendor_amd):
    """The core types this CPU's flags support, best first."""
    out = []
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
        if {"avx512_bf16", "amx_tile"} <= flags:
            out.append("SapphireRapids")
        if "avx512_bf16" in flags:
            out.append("Cooperlake")
        out.append("SkylakeX")
    if {"avx2", "fma"} <= flags:
        out += ["Zen", "Haswell"] if vendor_amd else ["Haswell"]
    if "avx" in flags:
        out.append("Sandybridge")
    return out


def rank_of_flags(flags):
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"} <= flags:
        return 3
    if {"avx2", "fma"} <= flags:
        return 2
    return 1 if "avx" in flags else 0


PROBE = r"""
import json, time, torch
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
a = torch.rand(256, 784, generator=g) - 0.5
b = torch.rand(784, 256, generator=g) - 0.5
ref = a.double() @ b.double()
c = a @ b
err = ((c.double() - ref).abs().max() / ref.abs().max()).item()
best = float("inf")
for _ in range(5):
    t = time.process_time()
    for _ in range(20):
        a @ b
    best = min(best, (time.process_time() - t) / 20)
print("PROBE " + json.dumps({"error": err, "ms": best * 1e3}))
"""


def probe(core):
    """OpenBLAS's core, the product's relative error and its CPU ms with OPENBLAS_CORETYPE=core (None: OpenBLAS's own choice)."""
    env = {k: v for k, v in os.environ.items() if k not in CORE_VARIABLES}
    env.update(OPENBLAS_VERBOSE="2", OPENBLAS_NUM_THREADS="1")
    if core is not None:
        env["OPENBLAS_CORETYPE"] = core
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return {"requested": core, "core": None, "ok": False, "why": "timed out"}
    text = done.stdout + done.stderr
    found = re.search(r"Core:\s*(\w+)", text)
    result = re.search(r"^PROBE (.*)$", done.stdout, re.M)
    out = {"requested": core, "core": found.group(1) if found else None}
    if done.returncode != 0 or result is None:
        return {**out, "ok": False, "why": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    out.update(json.loads(result.group(1)))
    out["ok"] = out["error"] <= TOLERANCE
    if not out["ok"]:
        out["why"] = f"product error {out['error']:.1e} > {TOLERANCE:.0e}"
    return out


def choose():
    """The BLAS core to run: OpenBLAS's own unless the CPU's flags support a better one that checks out."""
    model, flags = cpu_info()
    own = probe(None)
    choice = {"cpu": model, "inheritedCoreType": os.environ.get("OPENBLAS_CORETYPE"), "ownCore": own["core"],
              "coreType": None, "core": own["core"], "check": own.get("error"), "ms": own.get("ms"), "tried": []}
    if own["core"] is None:
        choice["note"] = "PyTorch's BLAS printed no core: not OpenBLAS, so its own choice stands"
        return choice
    if own["ok"] and RANK.get(own["core"], 0) >= rank_of_flags(flags):
        choice["note"] = "OpenBLAS's own choice uses the CPU's widest vectors"
        return choice
    vendor_amd = "AuthenticAMD" in open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else False
    for core in candidates(flags, vendor_amd):
        tried = probe(core)
        choice["tried"].append({k: tried.get(k) for k in ("requested", "core", "error", "ms", "ok", "why")})
        if tried["ok"] and tried["core"] == core and (not own["ok"] or tried["ms"] < own["ms"]):
            choice.update(coreType=core, core=core, check=tried["error"], ms=tried["ms"],
                          note=f"OpenBLAS chose {own['core']}; {core} (from the CPU's flags) checked against float64 and faster")
            return choice
    choice["note"] = f"OpenBLAS chose {own['core']}; no better core type checked out"
    return choice


def configure(blas_threads):
    """Applies the BLAS choice and OPENBLAS_NUM_THREADS=blas_threads (None: OpenBLAS's default pool), restarting the script if needed; returns the choice."""
    if os.environ.get("D2L_PEER_BLAS") == "as-is":
        model, _ = cpu_info()
        core = os.environ.get("OPENBLAS_CORETYPE")
        return {"cpu": model, "core": core, "coreType": core, "check": None,
                "note": "as set by hand (D2L_PEER_BLAS=as-is)" + ("" if core else "; OpenBLAS's own core, not asked")}
    choice = json.loads(os.environ[CHOICE_VARIABLE]) if CHOICE_VARIABLE in os.environ else choose()
    wanted = {k: v for k, v in os.environ.items() if k not in CORE_VARIABLES + ("OPENBLAS_NUM_THREADS",)}
    if choice.get("coreType"):
        wanted["OPENBLAS_CORETYPE"] = choice["coreType"]
    if blas_threads is not None:
        wanted["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    wanted[CHOICE_VARIABLE] = json.dumps(choice)
    wanted[MARK] = "1"
    if os.environ.get(MARK) != "1":
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, wanted)
    return choice


def describe(choice, torch_threads):
    """The keys a peer's JSON line reports about its set-up (blasThreads: OPENBLAS_NUM_THREADS, else OpenBLAS's default of a thread a core)."""
    return {"cpu": choice["cpu"], "blasCore": choice["core"], "blasCoreType": choice.get("coreType"),
            "blasCoreNote": choice.get("note"), "blasCheck": choice.get("check"),
            "blasThreads": int(os.environ.get("OPENBLAS_NUM_THREADS") or os.cpu_count()), "torchThreads": torch_threads}


if __name__ == "__main__":
    print(json.dumps(choose()))
