"""Compare tab (wired to the library as it lands)."""

from __future__ import annotations

from types import SimpleNamespace


def build(services, state):
    """The Compare tab's widgets and events."""
    import gradio as gr

    gr.Markdown("This tab is being wired to the library.")
    return SimpleNamespace()
