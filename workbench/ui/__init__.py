"""The dashboard and notebook views: param state shared by both, Panel views, the served app.

Importing this package loads neither panel nor bokeh; the names below load on first use::

    from workbench.ui import WorkbenchSession, WorkbenchApp
    import panel as pn; pn.extension(inline=True)        # in a notebook (no CDN here)
    app = WorkbenchApp(WorkbenchSession()); app            # the same page as `workbench dashboard`
"""

from __future__ import annotations

from workbench._lazy import lazy_getattr

_LAZY = {
    "WorkbenchSession": "workbench.ui.session",
    "WorkbenchState": "workbench.ui.state",
    "WorkbenchApp": "workbench.ui.app",
    "create_app": "workbench.ui.app",
    "run_dashboard": "workbench.ui.server",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
