"""Figures for the lessons: plain plotly ``go.Figure``s with a title, labelled axes and the
Okabe-Ito colour-blind-safe palette, and ``summary(fig)``, the text a screen reader gets instead of
the picture (every lesson prints it under its figure)."""
from __future__ import annotations

import plotly.graph_objects as go

# Okabe & Ito, "Color Universal Design" (2008): distinguishable with every common colour-vision deficiency
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MODE_COLORS = {"iptables": "#D55E00", "nftables": "#009E73", "ipvs": "#0072B2", "ebpf": "#CC79A7",
               "kernel": "#000000"}


def figure(title: str, x_title: str, y_title: str, **layout) -> go.Figure:
    """An empty figure in the course's style; add traces to it."""
    if not (title and x_title and y_title):
        raise ValueError("figure: a title and both axis titles are required (they are what a reader sees first)")
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template="simple_white",
                      colorway=PALETTE, legend_title_text="", **layout)
    return fig


def bar(title: str, x_title: str, y_title: str, labels, values, name: str = "", color: str | None = None,
        **layout) -> go.Figure:
    fig = figure(title, x_title, y_title, **layout)
    fig.add_bar(x=list(labels), y=list(values), name=name or y_title, marker_color=color or PALETTE[0])
    return fig


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def summary(fig: go.Figure, limit: int = 12) -> str:
    """A text version of ``fig``: its title and axes, then each trace's points (all of them when there
    are at most ``limit``, else the count, the range of x and the lowest and highest y)."""
    lay = fig.layout
    lines = [f"Figure: {lay.title.text}. x: {lay.xaxis.title.text}; y: {lay.yaxis.title.text}."]
    for i, tr in enumerate(fig.data):
        xs, ys = list(tr.x if tr.x is not None else []), list(tr.y if tr.y is not None else [])
        name = tr.name or f"series {i + 1}"
        if len(xs) <= limit:
            pts = ", ".join(f"{_fmt(x)}: {_fmt(y)}" for x, y in zip(xs, ys))
            lines.append(f"- {name}: {pts}.")
        else:
            lo, hi = min(range(len(ys)), key=ys.__getitem__), max(range(len(ys)), key=ys.__getitem__)
            lines.append(f"- {name}: {len(xs)} points, x from {_fmt(xs[0])} to {_fmt(xs[-1])}; lowest y "
                         f"{_fmt(ys[lo])} at {_fmt(xs[lo])}, highest {_fmt(ys[hi])} at {_fmt(xs[hi])}.")
    return "\n".join(lines)
