import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findTorchPython } from "../../scripts/bench-peer";

/**
 * scripts/peer/blas_setup.py: the peer's choice of OpenBLAS kernels. Its logic by CPU flags runs on
 * any Python 3; the probing needs a Python with torch (skipped without one).
 */
const PEER = join(__dirname, "..", "..", "scripts", "peer");

/** The last line of `code` run by `python` with scripts/peer on its path, as JSON. */
function python(code: string, interpreter = "python3"): unknown {
  const child = spawnSync(interpreter, ["-c", `import sys, json; sys.path.insert(0, ${JSON.stringify(PEER)}); import blas_setup\n${code}`],
    { encoding: "utf8", timeout: 300_000 });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim().split("\n").pop()!);
}

describe("blas_setup.py", () => {
  it("lists the core types a CPU's flags support, widest vectors first", () => {
    const avx512 = "avx avx2 fma avx512f avx512bw avx512vl avx512dq avx512cd";
    const lists = python(`print(json.dumps([
      blas_setup.candidates(set("${avx512} avx512_bf16 amx_tile".split()), False),
      blas_setup.candidates(set("${avx512} avx512_bf16".split()), True),
      blas_setup.candidates(set("${avx512}".split()), False),
      blas_setup.candidates(set("avx avx2 fma".split()), True),
      blas_setup.candidates(set("sse2 sse3".split()), False),
      [blas_setup.rank_of_flags(set("${avx512}".split())), blas_setup.rank_of_flags(set("avx avx2 fma".split())), blas_setup.rank_of_flags(set())],
    ]))`);
    expect(lists).toEqual([
      ["SapphireRapids", "Cooperlake", "SkylakeX", "Haswell", "Sandybridge"], // Sapphire Rapids
      ["Cooperlake", "SkylakeX", "Zen", "Haswell", "Sandybridge"], // AMD Zen 4 / Zen 5
      ["SkylakeX", "Haswell", "Sandybridge"], // Skylake-SP, Ice Lake
      ["Zen", "Haswell", "Sandybridge"], // AMD Zen 2 / Zen 3
      [], // nothing better than OpenBLAS's SSE kernels
      [3, 2, 0],
    ]);
  });

  const torchPython = findTorchPython();
  it.skipIf(torchPython === undefined)("keeps OpenBLAS's own core where it uses the CPU's widest vectors, else picks one that checks against float64", () => {
    type Choice = { core: string | null; coreType: string | null; ownCore: string | null; check: number | null; tried: { ok: boolean }[] };
    const own = python("print(json.dumps(blas_setup.choose()))", torchPython) as Choice;
    expect(own.core).not.toBeNull(); // Debian's PyTorch runs OpenBLAS, which names its core
    expect(own.check).toBeLessThanOrEqual(1e-4);
    // as on a CPU OpenBLAS 0.3.21 does not know: its own choice the SSE3 kernels
    const fallback = python(`
probe = blas_setup.probe
blas_setup.probe = lambda core: probe(core if core is not None else "Prescott")
print(json.dumps(blas_setup.choose()))`, torchPython) as Choice;
    expect(fallback.ownCore).toBe("Prescott");
    const flags = python("print(json.dumps(blas_setup.rank_of_flags(blas_setup.cpu_info()[1])))", torchPython) as number;
    if (flags > 0) {
      expect(fallback.coreType).not.toBeNull();
      expect(fallback.core).toBe(fallback.coreType);
      expect(fallback.check).toBeLessThanOrEqual(1e-4);
      expect(fallback.tried.some((t) => t.ok)).toBe(true);
    }
  }, 300_000);
});
