/**
 * The JupyterLab front end the browser tests drive: JupyterLab 4's own notebook panel,
 * assembled from the @jupyterlab packages as JupyterLab's examples/notebook does, with
 * plotly's JupyterLab MIME renderer (jupyterlab-plotly). Bundled by scripts/build-lab.ts,
 * served by scripts/lab/lab_server.py. The page's query selects what a test varies:
 * `?plotly=0` leaves plotly's renderer out (charts then use their text/html form), and
 * `?windowing=full|defer|none|contentVisibility` overrides JupyterLab's default
 * windowing mode (its notebook setting "windowingMode").
 */
import "./style";
import { PageConfig } from "@jupyterlab/coreutils";
import {
  CodeMirrorEditorFactory,
  CodeMirrorMimeTypeService,
  EditorExtensionRegistry,
  EditorLanguageRegistry,
  EditorThemeRegistry,
  ybinding,
} from "@jupyterlab/codemirror";
import { DocumentManager } from "@jupyterlab/docmanager";
import { DocumentRegistry } from "@jupyterlab/docregistry";
import { createMarkdownParser } from "@jupyterlab/markedparser-extension";
import { MathJaxTypesetter } from "@jupyterlab/mathjax-extension";
import { NotebookActions, NotebookModelFactory, NotebookPanel, NotebookWidgetFactory, StaticNotebook } from "@jupyterlab/notebook";
import { RenderMimeRegistry, standardRendererFactories } from "@jupyterlab/rendermime";
import { ServiceManager } from "@jupyterlab/services";
import { BoxPanel, Widget } from "@lumino/widgets";
import plotlyExtensions from "jupyterlab-plotly/lib/plotly-renderer.js";

type WindowingMode = StaticNotebook.INotebookConfig["windowingMode"];
const WINDOWING_MODES: WindowingMode[] = ["defer", "full", "none", "contentVisibility"];

/** What the tests reach through `window.d2lLab`. */
export interface D2lLab {
  panel: NotebookPanel;
  plotlyRenderer: boolean;
  windowingMode: WindowingMode;
  runAll(): Promise<boolean>;
  runCell(index: number): Promise<boolean>;
  save(): Promise<void>;
}

function editorFactory(languages: EditorLanguageRegistry): CodeMirrorEditorFactory {
  const themes = new EditorThemeRegistry();
  EditorThemeRegistry.getDefaultThemes().forEach((theme) => themes.addTheme(theme));
  const extensions = new EditorExtensionRegistry();
  EditorExtensionRegistry.getDefaultExtensions({ themes }).forEach((factory) => extensions.addExtension(factory));
  // Binds each editor to its cell's shared source, as JupyterLab's codemirror-extension does.
  extensions.addExtension({
    name: "shared-model-binding",
    factory: (options) => {
      const shared = options.model.sharedModel as unknown as { ysource: Parameters<typeof ybinding>[0]["ytext"]; undoManager: Parameters<typeof ybinding>[0]["undoManager"] | null };
      return EditorExtensionRegistry.createImmutableExtension(ybinding({ ytext: shared.ysource, undoManager: shared.undoManager ?? undefined }));
    },
  });
  EditorLanguageRegistry.getDefaultLanguages().forEach((language) => languages.addLanguage(language));
  return new CodeMirrorEditorFactory({ extensions, languages });
}

async function main(): Promise<void> {
  const query = new URLSearchParams(window.location.search);
  const plotlyRenderer = query.get("plotly") !== "0";
  const requested = query.get("windowing") as WindowingMode | null;
  const windowingMode = requested && WINDOWING_MODES.includes(requested) ? requested : StaticNotebook.defaultNotebookConfig.windowingMode;

  const manager = new ServiceManager();
  await manager.ready;

  const languages = new EditorLanguageRegistry();
  const rendermime = new RenderMimeRegistry({
    initialFactories: standardRendererFactories,
    latexTypesetter: new MathJaxTypesetter(),
    markdownParser: createMarkdownParser(languages),
  });
  // What JupyterLab does with a mimeExtension: add its factory at the extension's rank.
  if (plotlyRenderer) for (const ext of plotlyExtensions) rendermime.addFactory(ext.rendererFactory, ext.rank);

  const registry = new DocumentRegistry();
  const opened = { connect: () => false, disconnect: () => false };
  const docManager = new DocumentManager({ registry, manager, opener: { open: () => undefined, get opened() { return opened as never; } } });
  const editors = editorFactory(languages);
  registry.addModelFactory(new NotebookModelFactory({}));
  registry.addWidgetFactory(
    new NotebookWidgetFactory({
      name: "Notebook",
      modelName: "notebook",
      fileTypes: ["notebook"],
      defaultFor: ["notebook"],
      preferKernel: true,
      canStartKernel: true,
      rendermime,
      contentFactory: new NotebookPanel.ContentFactory({ editorFactory: editors.newInlineEditor }),
      mimeTypeService: new CodeMirrorMimeTypeService(languages),
      notebookConfig: { ...StaticNotebook.defaultNotebookConfig, windowingMode },
    }),
  );

  const panel = docManager.open(PageConfig.getOption("notebookPath")) as NotebookPanel;
  const main = new BoxPanel();
  main.id = "main";
  main.addClass("jp-ThemedContainer");
  BoxPanel.setStretch(panel, 1);
  main.addWidget(panel);
  Widget.attach(main, document.body);
  window.addEventListener("resize", () => main.update());

  const lab: D2lLab = {
    panel,
    plotlyRenderer,
    windowingMode,
    runAll: () => NotebookActions.runAll(panel.content, panel.sessionContext),
    runCell: (index) => {
      panel.content.activeCellIndex = index;
      return NotebookActions.run(panel.content, panel.sessionContext);
    },
    save: () => panel.context.save(),
  };
  (window as unknown as { d2lLab: D2lLab }).d2lLab = lab;
}

window.addEventListener("load", () => void main());
