import { inKernel } from "./display";
import { projectRoot } from "./fashion-mnist";

/** The project's Jupyter kernel, as `npm run kernel` registers it (scripts/lib/kernelspec.ts). */
export const PROJECT_KERNEL = { name: "d2l-ts", displayName: "TypeScript (d2l-ts)" } as const;

/**
 * What to tell a learner whose notebook runs in a tslab kernel other than the project's: Jupyter
 * falls back to any TypeScript kernel (a global tslab's "tslab", say) when "d2l-ts" is not
 * registered, and that kernel may run another Node and no longer exists once its folder goes.
 * Undefined outside a kernel and in the project's own, whose kernelspec sets `D2L_KERNEL`.
 */
export function kernelAdvice(): string | undefined {
  if (!inKernel() || process.env.D2L_KERNEL === PROJECT_KERNEL.name) return undefined;
  return (
    `d2l: this notebook is not running in the project's kernel "${PROJECT_KERNEL.displayName}". ` +
    `Register it with \`npm run kernel\` in ${projectRoot()}, then choose Kernel → Change Kernel → ${PROJECT_KERNEL.displayName}.`
  );
}
