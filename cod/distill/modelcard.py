"""The model card (README.md) of a distilled student: what it was distilled from, how, and how well it does."""

from __future__ import annotations

from typing import Any

PAPER = "Hamman et al., Few-Shot Knowledge Distillation of LLMs With Counterfactual Explanations (NeurIPS 2025)"


_SELECTION = {  # how the checkpoint was chosen (metrics["selection"]); never on training or test data
    "validation": "The checkpoint was chosen on {validation_size} labelled validation examples; the test split was "
    "only evaluated.",
    "teacher_agreement": "No labelled validation data: the checkpoint agreeing most with the teacher on "
    "{unlabelled_size} unlabelled texts was kept; the test split was only evaluated.",
    "last_step": "No held-out data: training ran a fixed schedule and kept the last step.",
}


def _selection_line(metrics: dict[str, Any]) -> str:
    """How the checkpoint was chosen, in words (older run folders have no sizes: 'n/a')."""
    line = _SELECTION.get(metrics.get("selection"), _SELECTION["validation"])
    return line.format(
        validation_size=metrics.get("validation_size", "n/a"), unlabelled_size=metrics.get("unlabelled_size", "n/a")
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def render_model_card(
    config: dict[str, Any],
    metrics: dict[str, Any],
    teacher: str,
    student: str,
    label_names: list[str],
    data: str = "",
) -> str:
    """Markdown with YAML front matter: teacher, student, method, k, seed, CoD settings, metrics."""
    method = f"{config['method']}+cod" if config.get("cod") else config["method"]
    base_model = student if "/" in student and not student.startswith(("/", ".")) else None
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags:",
        "- knowledge-distillation",
        "- counterfactual-distillation",
        "- cod-studio",
    ]
    if base_model:
        front.append(f"base_model: {base_model}")
    front.append("---")
    lines = front + [
        "",
        f"# {method} student distilled from `{teacher}`",
        "",
        f"A `{student}` text classifier distilled from the teacher `{teacher}` with **{method}** "
        f"on a budget of k = {config['k']} examples (seed {config['seed']}), by CoD Studio.",
        "",
        f"Labels: {', '.join(f'`{n}`' for n in label_names)}." + (f" Data: `{data}`." if data else ""),
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| method | {method} |",
        f"| k (examples) | {config['k']} |",
        f"| seed | {config['seed']} |",
        f"| epochs | {config['epochs']} |",
        f"| learning rate | {config['learning_rate']} |",
        f"| batch size | {config['batch_size']} |",
        f"| alpha (KL weight), temperature | {config['alpha']}, {config['temperature']} |",
        f"| head | {metrics.get('head', config.get('head'))} |",
        f"| LoRA | {'r=' + str(config['lora_r']) if config.get('lora') else 'no (full fine-tuning)'} |",
    ]
    if config["method"] == "lwd":
        lines.append(f"| LWD | beta {config['beta']}, {metrics.get('lwd_mode', config['lwd_mode'])} states |")
    if config.get("cod"):
        lines += [
            f"| CoD | {metrics.get('real_examples')} real examples + "
            f"{metrics.get('counterfactuals_used')} counterfactuals "
            f"({metrics.get('counterfactuals_unflipped', 0)} unflipped, "
            f"{'kept' if config.get('keep_unflipped') else 'dropped'}); counterfactual CE label = teacher's argmax"
            f"{'' if config.get('ce_on_counterfactuals', True) else ' (CE off on counterfactuals)'} |",
        ]
    lines += [
        "",
        "With CoD, half the budget is real examples and half their counterfactuals: minimal edits that flip the "
        "teacher's prediction, which place training points on both sides of the teacher's decision boundary.",
        "",
        "## Results",
        "",
        _selection_line(metrics),
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in (
        "student_test_accuracy",
        "student_test_macro_f1",
        "teacher_test_accuracy",
        "test_agreement",
        "student_validation_accuracy",
        "teacher_validation_accuracy",
        "best_step",
        "steps",
        "teacher_train_forward_passes",
        "unique_train_texts",
        "wall_seconds",
    ):
        if key in metrics:
            lines.append(f"| {key.replace('_', ' ')} | {_fmt(metrics[key])} |")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "from cod.modeling.heads import register",
        "",
        "register()  # cod's mean-pooling head class, when the model uses it",
        "",
        "model = AutoModelForSequenceClassification.from_pretrained(PATH)",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "```",
        "",
        f"Method: {PAPER}.",
        "",
    ]
    return "\n".join(lines)
