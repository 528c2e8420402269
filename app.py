"""CoD Studio: curate counterfactuals against a live teacher, distil a few-shot student, compare them.

`python app.py` serves http://127.0.0.1:7860 on the embedded default (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
are respected; COD_TORCH_THREADS sets torch's intra-op threads). Tests import `build_app(services)` and launch it
themselves with `launch_options()`.
"""

from __future__ import annotations

import logging
import os

import gradio as gr

from cod.config import DataConfig
from cod.public import public_mode
from components import compare, counterfactuals, data, distill, export, models
from components.live_route import LiveRoute
from components.services import Services, owner_for
from components.state import PageState
from components.style import ASSETS, css, esc, notice, theme

TITLE = "CoD Studio"


def header_html() -> str:
    """The title bar: logo, name, one line on what the tool does."""
    logo = (ASSETS / "logo.svg").read_text(encoding="utf-8")
    return (
        f'<div class="cod-header">{logo}<div><div class="cod-title">{TITLE}</div>'
        '<div class="cod-subtitle">Few-shot knowledge distillation with counterfactual explanations: '
        'curate minimal edits that flip the <span class="cod-t">teacher</span>, then distil a small '
        '<span class="cod-s">student</span> from half real examples, half counterfactuals.</div></div></div>'
    )


def status_html(services: Services) -> str:
    """A banner while the demo teacher is still building; empty once it is ready."""
    ready, message = services.teacher_status()
    if ready:
        return ""
    progress = services.build_progress()
    detail = f"<br><b>{esc(progress)}</b>" if progress else ""
    return notice(f'<span class="cod-spinner"></span>{esc(message)}{detail}', "info")


def lighten_gradio() -> None:
    """Take two per-event costs out of Gradio's queue (each event paid them; measured in bench_public_load.py):
    its monitoring summary, a pandas group-by over the last 10,000 events recomputed after every event, is
    recomputed every 1,000 events (GRADIO_ANALYTICS_CACHE_FREQUENCY, read when the queue is made); and without
    matplotlib installed, the backend switch wrapped around every event (two failed imports, each a search of the
    whole sys.path) is skipped."""
    import importlib.util

    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    if importlib.util.find_spec("matplotlib") is None:
        import contextlib

        import gradio.utils

        gradio.utils.MatplotlibBackendMananger = contextlib.nullcontext


def build_app(services: Services | None = None) -> gr.Blocks:
    """The whole app; `services` holds the process-level model cache, store and worker (a fresh one if None)."""
    lighten_gradio()
    services = services or Services()
    public = public_mode()
    with gr.Blocks(title=TITLE, fill_width=True) as app:
        state = gr.State(PageState(teacher=services.default_teacher, student=services.default_student))
        # The visitor's anonymous identity lives in their browser (encrypted localStorage); signed-in users are theirs.
        browser_id = gr.BrowserState("", storage_key="cod-visitor", secret=os.environ.get("COD_BROWSER_SECRET"))
        # The key the page's live previews send to the light route (components/live_route.py), set on page load.
        live = LiveRoute(
            {
                "predict": lambda s, teacher, text: models.predict_html(services, teacher or s.teacher, text),
                "counterfactual": lambda s, teacher, text: counterfactuals.live_html(services, s, text),
            }
        )
        live_key = gr.Textbox(visible=False, elem_id="cod-live-key")
        if public and os.environ.get("SPACE_ID"):  # Spaces provide the OAuth login (README metadata hf_oauth: true)
            with gr.Row():
                gr.HTML(header_html())
                gr.LoginButton(scale=0, min_width=200)
        else:
            gr.HTML(header_html())
        banner = gr.HTML(status_html(services), elem_id="status-banner")
        timer = gr.Timer(3.0, active=not services.teacher_status()[0])
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("1 · Data", id="data", elem_id="tab-data"):
                data_tab = data.build(services, state)
            with gr.Tab("2 · Models", id="models", elem_id="tab-models"):
                models_tab = models.build(services, state, live_key)
            with gr.Tab("3 · Counterfactuals", id="counterfactuals", elem_id="tab-counterfactuals") as cf_page:
                cf_tab = counterfactuals.build(services, state, live_key)
            with gr.Tab("4 · Distill", id="distill", elem_id="tab-distill") as distill_page:
                distill_tab = distill.build(services, state)
            with gr.Tab("5 · Compare", id="compare", elem_id="tab-compare") as compare_page:
                compare_tab = compare.build(services, state)
            with gr.Tab("6 · Export", id="export", elem_id="tab-export") as export_page:
                export_tab = export.build(services, state)

        def poll():
            ready = services.teacher_status()[0]
            return status_html(services), gr.Timer(active=not ready)

        tick = timer.tick(poll, None, [banner, timer], show_progress="hidden", api_visibility="private")
        # When the demo teacher appears, refresh the live prediction that was waiting for it.
        tick.then(
            models_tab.live,
            [models_tab.teacher, models_tab.probe],
            models_tab.probe_out,
            show_progress="hidden",
            api_visibility="private",
        )

        def identify(s: PageState, token: str, profile: gr.OAuthProfile | None):
            """Who this session is: the signed-in user, else the browser's anonymous id (locally: the shared ''); and
            the session's key for the live route."""
            if public:
                s.owner, token = owner_for(profile.username if profile is not None else None, token)
            return s, token, live.keys.issue(s)

        # First visit: who the visitor is, the default task and its few-shot draw, the teacher on the example sentence.
        who = app.load(
            identify, [state, browser_id], [state, browser_id, live_key], api_visibility="private", **data.SERIAL
        )
        # API clients (they run no load event) ask for their session's live key here.
        gr.Button(visible=False).click(
            lambda s: live.keys.issue(s), [state], [live_key], api_name="live_key", **data.SERIAL
        )
        load = who.then(
            data_tab.on_first_visit,
            [state, data_tab.task, data_tab.k, data_tab.seed],
            data_tab.outputs,
            api_visibility="private",
            **data.SERIAL,
        )
        load.then(
            models_tab.live,
            [models_tab.teacher, models_tab.probe],
            models_tab.probe_out,
            show_progress="hidden",
            api_visibility="private",
        )
        # Each tab redraws from the store when opened (another session may have changed the project).
        pages = (
            (cf_page, cf_tab),
            (distill_page, distill_tab),
            (compare_page, compare_tab),
            (export_page, export_tab),
        )
        for page, tab in pages:
            fn, inputs, outputs = tab.refresh
            page.select(fn, inputs, outputs, show_progress="hidden", api_visibility="private")
        for event in data_tab.changed:
            event.then(*cf_tab.refresh, show_progress="hidden", api_visibility="private")
    app.cod_routes = live.routes()  # mounted by `launch(**launch_options(app))`
    return app


def launch_options(app: gr.Blocks | None = None) -> dict:
    """Keyword arguments for `launch()`: theme and css moved there in Gradio 6; `app`'s own routes (the live
    previews' light path, `components/live_route.py`). Run history stays off: it would save every call's inputs in
    the browser, API keys and Hub tokens included. Uploads stop at the data reader's max_file_mb (COD_MAX_FILE_MB),
    so Gradio refuses a larger file before it reaches the disk."""
    routes = getattr(app, "cod_routes", None)
    return {
        **({"app_kwargs": {"routes": list(routes)}} if routes else {}),
        "theme": theme(),
        "css": css(),
        "favicon_path": str(ASSETS / "logo.svg"),
        "run_history": False,
        "footer_links": ["api", "gradio"],
        "max_file_size": int(DataConfig().max_file_mb * 2**20),
        # Sync handlers each hold a thread: live predictions (32) wait together for a shared forward while
        # followers of background jobs (24) poll, so Gradio's default of 40 would queue live predictions behind them.
        "max_threads": 128,
    }


def set_torch_threads() -> None:
    """torch intra-op threads from COD_TORCH_THREADS when set (on a busy 2-core host, 1 keeps live answers fastest)."""
    if os.environ.get("COD_TORCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["COD_TORCH_THREADS"]))


def main() -> None:
    """Serve the app (127.0.0.1:7860 unless GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say otherwise)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    set_torch_threads()
    services = Services()
    services.warm()  # builds the demo teacher if it is missing, then loads it before the first visitor types
    app = build_app(services)
    app.queue(default_concurrency_limit=4, max_size=int(os.environ.get("COD_QUEUE_SIZE", "256")))
    app.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_options(app),
    )


if __name__ == "__main__":
    main()
