"""ipywidgets views of bundles, servers and image builds, each with plain reprs.

One module per view, so a newcomer finds each where they would look::

    server.py        ServerWidget(handle)   status, URL (and the Jupyter-proxied URL), live
                                            stats, Stop, Containerize, Open docs, Try it
    bundle.py        BundleWidget(bundle)   tag, size, APIs, requirements; Serve, Containerize
    containerize.py  ContainerizeView()     progress of one image build
    table.py         Table(header, rows)    the tables of %bento list / %bento servers
    _refresh.py      the kernel's ONE refresh thread for every live server widget
    _shared.py       escaping, links, theme colours (JupyterLab CSS variables), the
                     stylesheet and the plain-repr mixin

Buttons work the same when clicked in the browser or from code (``widget.stop_button.click()``).
Every widget also has ``text/plain`` and ``text/html`` representations, so nbconvert HTML,
terminal IPython and frontends without the widget manager still show something useful;
those are snapshots and say so ("as of HH:MM:SS").

**After a kernel restart or crash** the Python side is gone and cannot redraw the widget,
so the frontend must. ipywidgets marks every view whose model has no live comm with the CSS
class ``jupyter-widgets-disconnected``: JupyterLab's widget manager disconnects all models
when the kernel's status turns "restarting" (a restart from the UI, and the automatic
restart after a crash), and views restored from a saved notebook start disconnected. The
server widget's header carries both texts — the live status ("running" / "stopped") and
"kernel restarted — server gone" — and its stylesheet shows the second only under that
class, greying the stats and fading the buttons. No custom JavaScript model and no
heartbeat traffic are needed; a browser test kills and restarts a kernel and reads the text.
Closing the comms at kernel exit would be worse: the frontend would remove the views.
Not covered: a frontend that loses the Jupyter server itself (jupyterlab_widgets 3 does
not disconnect the models then) keeps the last state it was sent.
"""

from ...store import human_size
from .bundle import BundleWidget
from .containerize import ContainerizeView
from .server import GONE, ServerWidget, proxy_url
from .table import Table

__all__ = ["GONE", "BundleWidget", "ContainerizeView", "ServerWidget", "Table", "human_size",
           "proxy_url"]
