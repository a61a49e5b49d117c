"""The one matplotlib set-up of nestdb: figures on their own Agg canvas, saved as PNG.

Figures are :class:`matplotlib.figure.Figure` objects with an Agg canvas
(never pyplot), so no backend is chosen globally, nothing needs closing, and
plotting works in worker processes and on machines without a display. Every
plotting function of nestdb builds its figure with :func:`subplots`, writes
it with :func:`save` and returns it, so tests can read the axes, labels and
plotted data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Resolution of the saved figures (dots per inch).
DPI = 130


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """A figure on an Agg canvas and its axes, as ``pyplot.subplots`` gives them.

    Parameters
    ----------
    nrows, ncols
        Grid of axes.
    figsize
        Width and height in inches.
    **kwargs
        Passed to :meth:`matplotlib.figure.Figure.subplots` (``sharex``, ``squeeze``, ...).

    Returns
    -------
    (Figure, Axes or array of Axes)
    """
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save(fig: Figure, path: str | Path, dpi: int = DPI, tight: bool = True) -> Figure:
    """Lay out (``tight_layout``) and write ``fig`` as PNG to ``path`` (its folder created); returns ``fig``."""
    if tight:
        fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return fig


def plot_message(path: str | Path, message: str) -> Figure:
    """A figure that only says ``message``: the report's placeholder when there is nothing to plot."""
    fig, ax = subplots(figsize=(6, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return save(fig, path, dpi=100, tight=False)
