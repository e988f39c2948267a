import { beforeEach } from "vitest";
import { initBackend } from "../lib/src/backend";
import { seedFromEnv, setSeed } from "../lib/src/seed";

// Every test file runs on the backend a user would get (wasm here), or D2L_BACKEND's.
await initBackend(undefined, { quiet: true });

// Every test starts from the same seed (D2L_SEED's, 0 by default), whichever tests ran before
// it, so a bound about a training run holds or fails on every run. `D2L_SEED=7 npm test` tries
// another seed. The notebooks and the bench that the e2e tests start get it too.
const seed = seedFromEnv() ?? 0;
process.env.D2L_SEED = String(seed);
beforeEach(() => setSeed(seed));
