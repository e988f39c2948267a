// jupyterlab-plotly ships JavaScript only; this is the part of its MIME extension the app uses.
declare module "jupyterlab-plotly/lib/plotly-renderer.js" {
  import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
  const extensions: { id: string; rendererFactory: IRenderMime.IRendererFactory; rank: number }[];
  export default extensions;
}
