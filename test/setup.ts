import { initBackend } from "../lib/src/backend";

// Every test file runs on the backend a user would get (wasm here), or D2L_BACKEND's.
await initBackend(undefined, { quiet: true });
