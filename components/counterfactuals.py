"""Counterfactuals tab: generate (offline search or an LLM), review against the live teacher, curate, undo/redo.

Every curation action goes straight to the project store (one transaction each), so a reload or a crash loses
nothing; the review table shows, per example of CoD's real half, its latest counterfactual.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from cod.counterfactuals import DEFAULT_PROPOSER
from cod.counterfactuals.fluency import add_fluency, is_fluent
from cod.errors import CodError, ProposerError, StoreError
from cod.experiment import FEW_SHOT
from components import live_route
from components.projects import ensure_project
from components.services import CONTROL, FOLLOW, QUEUED, RUNNING, gpu, ui_errors
from components.state import PageState
from components.style import badge, diff_html, esc, notice, preview_title, probs_html

log = logging.getLogger(__name__)
OFFLINE, LLM = "Offline search (lexicon + teacher)", "LLM (OpenAI-compatible)"
PROPOSER_CHOICES = {"lexical": OFFLINE, "llm": LLM}  # cod's proposer names -> the radio's labels
STATUS_KIND = {"proposed": "muted", "accepted": "ok", "edited": "ok", "rejected": "bad"}
COLUMNS = [
    "#",
    "status",
    "original",
    "counterfactual (edit highlighted)",
    "teacher before",
    "teacher after",
    "flip",
    "words",
    "fluency",
]
# The review table's fluency filter: label -> keep rows fluent by the score (`fluency.is_fluent`: for the default
# score, at most 0.1 nats/token below the original) (True), less fluent (False), all (None).
ALL_ROWS = "all"
FLUENCY_FILTERS = {
    ALL_ROWS: None,
    "about as fluent as the original or more": True,
    "less fluent than the original": False,
}


# --- reading the project ----------------------------------------------------------------------------------------
def current_records(services, state: PageState) -> list:
    """The latest counterfactual of each example of the draw, in draw order; updates `state.rows`."""
    if not state.project:
        state.rows = []
        return []
    store = services.store()
    records = store.counterfactuals(state.project)
    latest: dict = {}
    for r in records:  # ordered by id: later proposals for the same example replace earlier ones
        latest[r.example_id if r.example_id is not None else r.record.get("text")] = r
    order = {ex_id: i for i, (ex_id, _) in enumerate(store.example_rows(state.project, FEW_SHOT))}
    shown = sorted(latest.values(), key=lambda r: (order.get(r.example_id, len(order)), r.id))
    wanted = FLUENCY_FILTERS.get(state.extra.get("fluency_filter", ALL_ROWS))
    scored = scored_counterfactuals(shown) if wanted is not None else {}
    state.rows = [r.id for r in shown if wanted is None or is_fluent(scored[r.id]) == wanted]
    if state.selected not in state.rows:
        state.selected = state.rows[0] if state.rows else None
    return shown


def scored_counterfactuals(records) -> dict:
    """{record id: counterfactual} with the fluency of the current texts by the default score (`add_fluency` with
    the task's label names): as stored when so scored, else scored now; None where the LM is unavailable."""
    cfs = [r.counterfactual for r in records]  # a new object per access: scored here, kept in the dict
    try:
        add_fluency(cfs, label_names=records[0].label_names if records else ())
    except CodError as err:  # the embedded LLM is not installed: the table goes on without the column
        log.warning("No fluency scores: %s", err)
    return {r.id: cf for r, cf in zip(records, cfs)}


def record_fluency(records) -> dict:
    """{record id: fluency} of the current texts (`scored_counterfactuals`)."""
    return {key: cf.fluency for key, cf in scored_counterfactuals(records).items()}


def curated(services, state: PageState, include_unreviewed: bool = False) -> list:
    """The counterfactual that trains for each example (the library's one rule: the edit, else the accepted one)."""
    from cod.experiment import training_counterfactuals

    if not state.project:
        return []
    return training_counterfactuals(services.store(), state.project, include_unreviewed)


def _top(label_names, probs) -> str:
    if not probs:
        return '<span class="cod-muted">not scored</span>'
    i = max(range(len(probs)), key=lambda j: probs[j])
    return f'<span class="cod-t">{esc(label_names[i])}</span> {100 * probs[i]:.0f}%'


def review_frame(services, state: PageState) -> pd.DataFrame:
    """The review table: one row per example shown (see the fluency filter) with its counterfactual, teacher
    before/after, flip, size and fluency."""
    rows = []
    records = current_records(services, state)
    fluency = record_fluency(records)
    for n, r in enumerate(records, 1):
        if r.id not in state.rows:
            continue
        cf = r.counterfactual
        names = list(r.label_names)
        flipped = cf.flipped if cf.counterfactual_teacher_probs else None
        rows.append(
            {
                "#": n,
                "status": badge(r.status, STATUS_KIND.get(r.status, "muted")),
                "original": cf.text,
                COLUMNS[3]: diff_html(cf.text, cf.counterfactual)
                if cf.counterfactual
                else notice(esc(cf.error or "no counterfactual"), "warn"),
                "teacher before": _top(names, cf.teacher_probs),
                "teacher after": _top(names, cf.counterfactual_teacher_probs),
                "flip": badge("flipped", "ok")
                if flipped
                else badge("no flip" if flipped is False else "unscored", "bad"),
                "words": cf.words_changed if cf.counterfactual else 0,
                "fluency": fluency.get(r.id),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def stats_html(services, state: PageState) -> str:
    """Counts by status, flipped share and the project's name."""
    records = current_records(services, state)
    if not records:
        where = f"Project <b>{esc(state.project)}</b>: " if state.project else ""
        return notice(
            f"{where}no counterfactuals yet: press <b>Generate</b> to propose one for each of the "
            f"{len(state.real_half)} examples of CoD's real half."
        )
    by = {s: sum(r.status == s for r in records) for s in STATUS_KIND}
    flipped = sum(bool(r.counterfactual.counterfactual_teacher_probs) and r.counterfactual.flipped for r in records)
    cells = [
        ("examples", len(records)),
        ("flipped", flipped),
        ("accepted", by["accepted"]),
        ("edited", by["edited"]),
        ("rejected", by["rejected"]),
        ("to review", by["proposed"]),
    ]
    inner = "".join(f'<div class="cod-stat"><b>{v}</b><span>{k}</span></div>' for k, v in cells)
    return (
        f'<div class="cod-stats">{inner}<div class="cod-stat cod-project"><b>{esc(state.project)}</b>'
        "<span>project (saved on every change)</span></div></div>"
    )


# --- the editor -------------------------------------------------------------------------------------------------
def _record(services, state: PageState):
    if state.selected is None:
        raise StoreError("No counterfactual selected: generate some, then click a row of the table.")
    return services.store().counterfactual(state.selected)


def editor_values(services, state: PageState) -> tuple[str, str, str]:
    """(original card HTML, counterfactual text, live card HTML) for the selected counterfactual."""
    if state.selected is None:
        return notice("Click a row of the table to review it here."), "", ""
    r = _record(services, state)
    cf = r.counterfactual
    names = list(r.label_names)
    state.extra["editing"] = {"id": r.id, "text": cf.text, "target": cf.target, "labels": names}
    n = state.rows.index(r.id) + 1 if r.id in state.rows else "?"
    original = (
        f'<div class="cod-card"><div class="cod-card-label">Original {n} of {len(state.rows)} · gold label '
        f'<b>{esc(names[cf.label])}</b> · target <b>{esc(names[cf.target])}</b> · '
        f'{badge(r.status, STATUS_KIND.get(r.status, "muted"))} · by {esc(r.source)}</div>'
        f'<div class="cod-original">{esc(cf.text)}</div>'
        f'{probs_html(names, cf.teacher_probs, "teacher", "Teacher on the original")}</div>'
    )
    return original, r.text, live_html(services, state, r.text)


def live_html(services, state: PageState, text: str) -> str:
    """The teacher on the text being edited: probabilities, flipped or not, words changed, the diff."""
    editing = state.extra.get("editing")
    if not editing:
        return ""
    text = (text or "").strip()
    names = editing["labels"]
    if not text:
        return notice("Write a counterfactual (a minimal edit of the original that flips the teacher).", "warn")
    teacher = services.teacher(state.teacher)
    probs = services.live_proba(teacher, text).tolist()
    title = preview_title("Teacher on the counterfactual (live)", services.live_precision(teacher))
    top = max(range(len(probs)), key=lambda i: probs[i])
    from cod.counterfactuals.edits import diff, words_changed

    n_words = words_changed(diff(editing["text"], text))
    flip = (
        badge(f"flipped to {names[top]}", "ok")
        if top == editing["target"]
        else badge(f"not flipped ({names[top]})", "bad")
    )
    return (
        f'<div class="cod-live">{probs_html(names, probs, "teacher", title)}'
        f'<div class="cod-live-badges">{flip} {badge(f"{n_words} word(s) changed", "muted")}</div>'
        f"{diff_html(editing['text'], text)}</div>"
    )


def save_edit(services, state: PageState, text: str, source: str = "person") -> bool:
    """Store the edited text with the teacher's probabilities; False when nothing changed."""
    r = _record(services, state)
    text = (text or "").strip()
    if text == r.text:
        return False
    probs = services.teacher(state.teacher).predict_proba([text])[0].tolist() if text else None
    services.store().edit(r.id, text, probs, source=source, expected_version=r.version)
    return True


def set_status(services, state: PageState, status: str, text: str | None = None) -> None:
    """Accept or reject the selected counterfactual (saving a pending edit first), then move to the next."""
    if text is not None:
        save_edit(services, state, text)
    r = _record(services, state)
    store = services.store()
    if status == "accepted" and r.status == "edited":
        pass  # an edited counterfactual is already kept
    else:
        store.set_status([r.id], status, expected_versions=[r.version])
    current_records(services, state)
    state.step(+1)


def bulk_accept(services, state: PageState, max_words: int) -> int:
    """Accept, as one undoable action, every proposed counterfactual that flips with at most `max_words` changed."""
    ids = [
        r.id
        for r in current_records(services, state)
        if r.status == "proposed"
        and r.counterfactual.counterfactual
        and r.counterfactual.flipped
        and r.counterfactual.words_changed <= int(max_words)
    ]
    if ids:
        services.store().set_status(ids, "accepted")
    return len(ids)


def undo(services, state: PageState, redo: bool = False) -> str:
    """Undo (or redo) the project's last curation action; returns what happened, for a toast."""
    if not state.project:
        return "Nothing to undo yet."
    store = services.store()
    action = store.redo(state.project) if redo else store.undo(state.project)
    if action is None:
        return f"Nothing to {'redo' if redo else 'undo'}."
    return (
        f"{'Redid' if redo else 'Undid'} {action.target_kind or 'the last action'} "
        f"on {len(action.counterfactual_ids)} counterfactual(s)."
    )


def shrink_selected(services, state: PageState) -> str:
    """Revert every edit the flip does not need (the library's greedy shrink), saved as an edit."""
    from cod.counterfactuals.shrink import shrink

    r = _record(services, state)
    cf = r.counterfactual
    if not cf.counterfactual_teacher_probs or not cf.flipped:
        raise ProposerError(
            "Only a counterfactual that flips the teacher can be shrunk: edit it until it flips first."
        )
    small = shrink(cf, services.teacher(state.teacher))
    if small.counterfactual == r.text:
        return "Already minimal: every edit is needed for the flip."
    services.store().edit(
        r.id, small.counterfactual, small.counterfactual_teacher_probs, source="shrink", expected_version=r.version
    )
    return f"Shrunk from {cf.words_changed} to {small.words_changed} word(s) changed."


# --- generation -------------------------------------------------------------------------------------------------
def make_proposer(
    state: PageState, kind: str, base_url: str = "", model: str = "", api_key: str = "", fresh: bool = False
):
    """The proposer the user chose; the API key only reaches the client object, never the state or a log."""
    from cod.paths import cache_dir

    if kind == LLM:
        from cod.config import LLMConfig
        from cod.counterfactuals.llm import LLMProposer, default_model

        url, key = (base_url or "").strip() or None, (api_key or "").strip() or None
        config = LLMConfig(
            base_url=url,
            model=(model or "").strip() or default_model(url, key),
            task_description=state.extra.get("task_description", ""),
        )
        from cod.public import Limits, public_mode

        if public_mode():
            Limits.from_env().check(candidates=config.candidates)
        return LLMProposer(config, api_key=(api_key or "").strip() or None, cache_dir=False if fresh else None)
    from cod.config import LexicalConfig
    from cod.counterfactuals.lexical import LexicalProposer

    return LexicalProposer(
        LexicalConfig(), few_shot=state.few_shot, cache_dir=False if fresh else cache_dir("lexical")
    )


def pending_examples(services, state: PageState) -> list[tuple[int, object]]:
    """(example id, Example) of CoD's real half that have no counterfactual yet."""
    from cod.experiment import examples_to_propose

    return examples_to_propose(services.store(), state.project)


def start_generation(services, state: PageState, session: str, kind: str, base_url="", model="", api_key=""):
    """Queue a job proposing a counterfactual for every example of the real half that has none; returns it."""
    if services.worker.running("generate", owner=session):
        raise ProposerError("Counterfactuals are already being generated in this session: stop them or wait.")
    ensure_project(services, state)
    todo = pending_examples(services, state)
    if not todo:
        raise ProposerError(
            "Every example of CoD's real half already has a counterfactual: regenerate one, or draw again."
        )
    proposer = make_proposer(state, kind, base_url, model, api_key)  # fails here (bad key) before queueing
    teacher = services.teacher(state.teacher)
    store, project = services.store(), state.project
    chunk = getattr(getattr(proposer, "config", None), "concurrency", 1) if kind == LLM else 1

    def run(job):
        done = 0
        job.emit({"done": 0, "total": len(todo)})
        try:
            for start in range(0, len(todo), chunk):  # saved chunk by chunk: a crash loses at most one chunk
                if job.should_stop():
                    break
                part = todo[start : start + chunk]
                cfs = proposer.propose([e for _, e in part], teacher, stop=job.should_stop)
                keep = [
                    (i, cf)
                    for (i, _), cf in zip(part, cfs)
                    if not (job.should_stop() and cf.error and not cf.counterfactual)
                ]
                if keep:
                    store.add_counterfactuals(project, [cf for _, cf in keep], example_ids=[i for i, _ in keep])
                done += len(part)
                job.emit({"done": done, "total": len(todo)})
        finally:
            getattr(proposer, "close", lambda: None)()  # the LLM client's connections
        return done

    state.cf_job = services.worker.submit("generate", gpu(run), owner=session, visitor=state.owner).id
    return state.cf_job


def progress_html(services, job) -> str:
    """A progress bar for a generation or distillation job (queued, running, done, stopped, failed)."""
    if job is None:
        return ""
    last = job.events[-1] if job.events else {}
    done, total = (last.get("done", 0), last.get("total", 0)) if isinstance(last, dict) else (0, 0)
    if job.status == QUEUED:
        ahead = services.worker.ahead_of(job)
        return notice(f"Queued behind {ahead} job(s) of other sessions; it starts by itself.", "info")
    pct = 100 * done / total if total else 0
    bar = f'<div class="cod-progress"><span style="width:{pct:.0f}%"></span></div>'
    if job.status == RUNNING:
        return f'{bar}<div class="cod-muted">Generating… {done} of {total} examples</div>'
    if job.error:
        return notice(esc(job.error), "error")
    verb = "Stopped after" if job.status == "stopped" else "Done:"
    return f'{bar}<div class="cod-muted">{verb} {done} of {total} examples.</div>'


def regenerate_selected(services, state: PageState, kind: str, base_url="", model="", api_key="") -> str:
    """Replace the selected counterfactual with a new proposal (another candidate the search or LLM found, else a
    fresh search); the old one is rejected, so only the new one is kept."""
    from cod.counterfactuals.base import Counterfactual, wins

    r = _record(services, state)
    cf, teacher, store = r.counterfactual, services.teacher(state.teacher), services.store()
    seen = {h.after.get("text") for h in store.history(cf_id=r.id) if h.after} | {r.text}
    alternatives = [
        c.get("text") if isinstance(c, dict) else c
        for c in (cf.extra.get("alternatives") or []) + (cf.extra.get("candidates") or [])
    ]
    alternatives = [a for a in alternatives if a and a not in seen]
    new = None
    if alternatives:
        probs = teacher.predict_proba(alternatives).tolist()
        flips = [(a, p) for a, p in zip(alternatives, probs) if wins(p, cf.target)]
        if flips:
            text, p = flips[0]
            new = Counterfactual(
                cf.text, cf.label, cf.teacher_probs, text, cf.target, p, proposer=f"{r.source} (alternative)"
            )
    if new is None:
        proposer = make_proposer(state, kind, base_url, model, api_key, fresh=True)
        try:
            new = proposer.propose([_example(store, state, r)], teacher, target=cf.target)[0]
        finally:
            getattr(proposer, "close", lambda: None)()
        if new.counterfactual in seen:
            return "No other counterfactual found for this example: edit it by hand."
    if r.status != "rejected":
        store.set_status([r.id], "rejected", source="regenerate")
    rec = store.add_counterfactuals(state.project, [new], example_ids=[r.example_id])[0]
    state.selected = rec.id
    return "Regenerated: a new proposal replaces the old one (undo restores the old one's status)."


def _example(store, state: PageState, record):
    from cod.data.readers import Example

    for i, e in store.example_rows(state.project, FEW_SHOT):
        if i == record.example_id:
            return e
    cf = record.counterfactual
    return Example(cf.text, cf.label)


# --- layout -----------------------------------------------------------------------------------------------------
def build(services, state, live_key=None):
    """The Counterfactuals tab; returns its refresh hook for other tabs. `live_key`: see `models.build`."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            gr.Markdown("### Generate")
            chosen = PROPOSER_CHOICES[DEFAULT_PROPOSER]
            kind = gr.Radio([OFFLINE, LLM], value=chosen, label="Proposer", elem_id="proposer")
            with gr.Group(visible=chosen == LLM) as llm_box:
                base_url = gr.Textbox(
                    label="Base URL", placeholder="https://api.openai.com/v1 or http://127.0.0.1:8080/v1"
                )
                model = gr.Textbox(
                    label="Model (demo-llm: the embedded LLM, on this machine; the default with no " "URL or key)",
                    placeholder="gpt-4o-mini or demo-llm",
                )
                api_key = gr.Textbox(label="API key (never stored or logged)", type="password", elem_id="api-key")
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                stop = gr.Button("Stop", variant="stop", elem_id="stop-generate")
            progress = gr.HTML(elem_id="generate-progress")
            gr.Markdown("### Bulk and history")
            max_words = gr.Slider(
                1, 10, value=3, step=1, label="Accept every flipped proposal with at most N words changed"
            )
            bulk = gr.Button("Accept flipped ≤ N", elem_id="bulk-accept")
            with gr.Row():
                undo_btn = gr.Button("↶ Undo", size="sm", elem_id="undo")
                redo_btn = gr.Button("↷ Redo", size="sm", elem_id="redo")
        with gr.Column(scale=3):
            stats = gr.HTML(elem_id="cf-stats")
            fluency_filter = gr.Radio(
                list(FLUENCY_FILTERS),
                value=ALL_ROWS,
                elem_id="fluency-filter",
                label=(
                    "Show (fluency: SLOR change per token under the embedded LLM, i.e. log-likelihood beyond "
                    "what word frequency explains; 0 reads as the original)"
                ),
            )
            table = gr.Dataframe(
                pd.DataFrame(columns=COLUMNS),
                datatype=["number", "html", "str", "html", "html", "html", "html", "number", "number"],
                interactive=False,
                wrap=True,
                max_height=380,
                elem_id="review-table",
                column_widths=["3%", "9%", "21%", "29%", "9%", "9%", "9%", "5%", "6%"],
            )
            with gr.Row(equal_height=False, elem_id="editor"):
                with gr.Column(scale=1):
                    original = gr.HTML(elem_id="original-card")
                with gr.Column(scale=1):
                    cf_text = gr.Textbox(
                        label="Counterfactual (edit it: the teacher answers as you type)", lines=3, elem_id="cf-text"
                    )
                    live = gr.HTML(elem_id="cf-live")
            with gr.Row():
                prev_btn = gr.Button("◀ Previous", size="sm", min_width=80, elem_id="prev")
                next_btn = gr.Button("Next ▶", size="sm", min_width=80, elem_id="next")
                accept = gr.Button("✓ Accept", variant="primary", size="sm", min_width=80, elem_id="accept")
                reject = gr.Button("✗ Reject", variant="stop", size="sm", min_width=80, elem_id="reject")
                shrink_btn = gr.Button("Shrink", size="sm", min_width=80, elem_id="shrink")
                regen = gr.Button("Regenerate", size="sm", min_width=80, elem_id="regenerate")

    view = [state, stats, table, original, cf_text, live]
    llm_inputs = [kind, base_url, model, api_key]

    def render(s: PageState):
        frame = review_frame(services, s)
        return (s, stats_html(services, s), frame, *editor_values(services, s))

    def after(fn):
        """Run an action on the selected counterfactual, toast its message, and redraw."""

        def go(s: PageState, *args):
            message = fn(s, *args)
            if message:
                gr.Info(message, duration=3)
            return render(s)

        return ui_errors(go)

    def on_select(s: PageState, evt: gr.SelectData):
        s.select_row(evt.index[0] if isinstance(evt.index, list | tuple) else evt.index)
        return (s, *editor_values(services, s))

    def on_generate(s: PageState, request: gr.Request, k, url, m, key):
        session = getattr(request, "session_hash", "") or ""
        job_id = start_generation(services, s, session, k, url, m, key)
        job = services.worker.get(job_id)
        seen = -1
        while True:
            if len(job.events) != seen or job.done:
                seen = len(job.events)
                yield (*render(s), progress_html(services, job))
            if job.done:
                break
            time.sleep(0.3)
        if job.error:
            raise gr.Error(job.error, print_exception=False)

    def on_stop(s: PageState):
        job = services.worker.get(s.cf_job)
        if job is not None and not job.done:
            job.stop()
            return notice("Stopping after the example in progress…")
        return gr.update()

    table.select(ui_errors(on_select), [state], [state, original, cf_text, live], api_visibility="private")
    live_route.wire(
        cf_text,
        live,
        key=live_key,
        kind="counterfactual",
        fields={"text": cf_text},
        gradio_fn=ui_errors(gpu(lambda s, t: live_html(services, s, t), duration=10)),
        gradio_inputs=[state, cf_text],
        api_name="live_counterfactual",
    )
    cf_text.blur(
        after(lambda s, t: "Edit saved." if save_edit(services, s, t) else ""),
        [state, cf_text],
        view,
        show_progress="hidden",
        api_visibility="private",
    )
    generate.click(ui_errors(on_generate), [state, *llm_inputs], view + [progress], api_name="generate", **FOLLOW)
    stop.click(on_stop, [state], progress, api_visibility="private", **CONTROL)
    accept.click(after(lambda s, t: set_status(services, s, "accepted", t)), [state, cf_text], view, api_name="accept")
    reject.click(after(lambda s, t: set_status(services, s, "rejected", t)), [state, cf_text], view, api_name="reject")
    shrink_btn.click(after(lambda s: shrink_selected(services, s)), [state], view, api_visibility="private")
    regen.click(
        after(lambda s, *a: regenerate_selected(services, s, *a)), [state, *llm_inputs], view, api_visibility="private"
    )
    bulk.click(
        after(lambda s, n: f"Accepted {bulk_accept(services, s, n)} counterfactual(s) in one undoable step."),
        [state, max_words],
        view,
        api_name="bulk_accept",
    )
    undo_btn.click(after(lambda s: undo(services, s)), [state], view, api_visibility="private")
    redo_btn.click(after(lambda s: undo(services, s, redo=True)), [state], view, api_visibility="private")
    prev_btn.click(after(lambda s: s.step(-1) and None), [state], view, api_visibility="private")
    next_btn.click(after(lambda s: s.step(+1) and None), [state], view, api_visibility="private")
    kind.change(lambda k: gr.Group(visible=k == LLM), kind, llm_box, api_visibility="private")

    def on_filter(s: PageState, choice: str):
        s.extra["fluency_filter"] = choice
        return render(s)

    fluency_filter.change(ui_errors(on_filter), [state, fluency_filter], view, api_visibility="private")
    return SimpleNamespace(
        refresh=(ui_errors(render), [state], view), view=view, table=table, cf_text=cf_text, live=live
    )
