"""Serve the project's JupyterLab front end (build/lab, from scripts/build-lab.ts).

Debian's jupyter-server and jupyterlab-server, as JupyterLab's examples/notebook does: a
LabServerApp whose page at /d2l-lab/<notebook path> loads the bundle with the page config
(base URL, token) the @jupyterlab packages read. The REST and websocket APIs are the
server's own (contents, sessions, kernels, nbconvert).

  python3 scripts/lab/lab_server.py --bundle-dir build/lab --ServerApp.root_dir=DIR ...
"""
import os
import sys

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerJinjaMixin, ExtensionHandlerMixin
from jupyter_server.utils import url_path_join as ujoin
from jupyterlab_server import LabServerApp

HERE = os.path.dirname(os.path.abspath(__file__))


def bundle_dir():
    """--bundle-dir DIR (taken out of argv before traitlets parses it)."""
    if "--bundle-dir" in sys.argv:
        i = sys.argv.index("--bundle-dir")
        value = sys.argv[i + 1]
        del sys.argv[i : i + 2]
        return os.path.abspath(value)
    return os.path.abspath(os.path.join(HERE, "..", "..", "build", "lab"))


BUNDLE = bundle_dir()


class NotebookPageHandler(ExtensionHandlerJinjaMixin, ExtensionHandlerMixin, JupyterHandler):
    """The page that opens one notebook in the bundled notebook panel."""

    def get(self, path):
        config = {
            "appName": "d2l-ts JupyterLab",
            "baseUrl": self.base_url,
            "wsUrl": self.settings.get("websocket_url", ""),
            "token": self.settings["token"],
            "notebookPath": path,
            "fullStaticUrl": ujoin(self.base_url, "static", self.name),
        }
        self.write(self.render_template("index.html", page_config=config))


class D2lLabApp(LabServerApp):
    name = "d2l_lab"
    extension_url = "/d2l-lab"
    default_url = "/d2l-lab"
    app_url = "/d2l-lab"
    app_name = "d2l-ts JupyterLab"
    load_other_extensions = False
    static_dir = BUNDLE
    templates_dir = os.path.join(HERE, "templates")
    app_settings_dir = os.path.join(BUNDLE, "settings")
    schemas_dir = os.path.join(BUNDLE, "schemas")
    themes_dir = os.path.join(BUNDLE, "themes")
    user_settings_dir = os.path.join(BUNDLE, "user-settings")
    workspaces_dir = os.path.join(BUNDLE, "workspaces")

    def initialize_handlers(self):
        self.handlers.append(("/d2l-lab/(.+)", NotebookPageHandler))


def _jupyter_server_extension_points():
    return [{"module": __name__, "app": D2lLabApp}]


if __name__ == "__main__":
    D2lLabApp.launch_instance()
