"""Evaluation runs and sweep reports to Weights & Biases (``logger=wandb``), on the training side's helpers.

An ``evaluate`` run logs, as one W&B run (job type ``evaluate``):

- summary metrics ``<strategy>/<metric>`` (EM, F1, ... and every efficiency figure), their 95% intervals
  (``<metric>_ci_low``/``_ci_high``), the paired comparison with the reference (``<metric>_diff``, ``_p``), NFE and
  tokens per forward (``reporting/uncertainty.py``), and a ``strategies`` table;
- ``predictions``: a per-question table (strategy, group, question, gold, prediction, raw output, scores);
- every plot (``*.png``) of the run dir as an image, and an ``evaluation`` artifact holding ``results.json``,
  ``predictions.jsonl``, ``groups.jsonl``, the plots and the HTML views (e.g. ``dag_views/<strategy>/*.html``).

A sweep's report (``report.md``/``.csv``, its plots) goes to a W&B run of its own when the sweep had ``logger=wandb``.
Naming, grouping, run ids and offline mode (``WANDB_MODE=offline`` or no credentials) are those of ``train``
(``parallel_decoding.utils.loggers``); everything logged is passed through the secret redaction first.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from parallel_decoding.evaluation.recorder import PREDICTIONS_FILE, read_jsonl
from parallel_decoding.reporting.uncertainty import uncertainty_fields
from parallel_decoding.utils.loggers import configure_wandb
from parallel_decoding.utils.runtime import plain_config
from parallel_decoding.utils.secrets import redact

log = logging.getLogger(__name__)

RUN_FILES = ("results.json", "predictions.jsonl", "groups.jsonl")
REPORT_FILES = ("report.md", "report.csv", "report_long.csv")
VIEW_SUFFIXES = (".png", ".html")
MAX_IMAGES = 50  # plots shown as images in the run; all of them are in the artifact anyway
TABLE_COLUMNS = ("strategy", "group_id", "question_id", "question", "gold", "prediction", "raw_output",
                 "format_valid", "answered")


def wandb_node(cfg: DictConfig) -> DictConfig | None:
    """The configured ``logger`` entry that targets W&B, if any (``logger=wandb`` or ``logger=many``)."""
    for node in (cfg.get("logger") or {}).values():
        if isinstance(node, DictConfig) and str(node.get("_target_", "")).endswith("WandbLogger"):
            return node
    return None


def _open_run(cfg: DictConfig, node: DictConfig):
    # imported here: they pull in Lightning's loggers, which evaluate needs only when W&B is on

    logger = instantiate(configure_wandb(cfg, node))
    logger.log_hyperparams(plain_config(cfg))
    return logger.experiment


def view_files(run_dir: Path) -> list[Path]:
    """Plots and HTML views under ``run_dir`` (W&B's own directory excluded), in a stable order."""
    return sorted(p for p in run_dir.rglob("*") if p.suffix in VIEW_SUFFIXES and p.is_file()
                  and "wandb" not in p.relative_to(run_dir).parts[:-1])


def prediction_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the per-question table: the fixed fields, then every score the rows carry."""
    scores = list(dict.fromkeys(k for row in rows for k, v in row.items()
                                if k not in TABLE_COLUMNS and isinstance(v, (int, float)) and not isinstance(v, bool)))
    columns = [*TABLE_COLUMNS, *scores, "judge"]
    data = []
    for row in rows:
        values = {**row, "gold": " | ".join(str(g) for g in row.get("gold", [])),
                  "judge": json.dumps(row["judge"]) if "judge" in row else None}
        data.append([values.get(c) for c in columns])
    return columns, data


def strategy_summary(results: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[list[Any]]]:
    """(``<strategy>/<figure>`` summary, columns and rows of the one-row-per-strategy table)."""
    summary: dict[str, Any] = {}
    figures: list[str] = []
    for strategy, entry in results.get("strategies", {}).items():
        flat = {**entry.get("metrics", {}), **entry.get("efficiency", {}), "n_questions": entry.get("n_questions"),
                "n_groups": entry.get("n_groups"), **uncertainty_fields(entry)}
        for key, value in flat.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                summary[f"{strategy}/{key}"] = value
                if key not in figures:
                    figures.append(key)
    rows = [[s, *[summary.get(f"{s}/{f}") for f in figures]] for s in results.get("strategies", {})]
    return summary, ["strategy", *figures], rows


def _number(text: str) -> Any:
    """A CSV cell as W&B should type it: a number, None for an empty cell (the reference has no paired diff)."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _artifact(name: str, kind: str, root: Path, files: list[Path], metadata: dict[str, Any]):
    import wandb  # lazy: W&B (~2 s) only when logging to it

    artifact = wandb.Artifact(name, type=kind, metadata=redact(metadata))
    for path in files:
        artifact.add_file(str(path), name=path.relative_to(root).as_posix())
    return artifact


def _log_images(run, root: Path, files: list[Path]) -> None:
    import wandb  # lazy: as above

    images = [p for p in files if p.suffix == ".png"][:MAX_IMAGES]
    if images:
        run.log({f"plots/{p.relative_to(root).with_suffix('').as_posix()}": wandb.Image(str(p)) for p in images})


def log_evaluation(cfg: DictConfig, run_dir: str | Path, results: dict[str, Any]) -> str | None:
    """Log one finished evaluate run to W&B when a wandb logger is configured; returns the W&B run id."""
    node = wandb_node(cfg)
    if node is None:
        if cfg.get("logger"):
            log.warning("evaluate logs to W&B only (logger=wandb); the other loggers are ignored")
        return None
    import wandb  # lazy: as above

    run_dir = Path(run_dir)
    run = _open_run(cfg, node)
    try:
        summary, columns, rows = strategy_summary(results)
        run.summary.update(summary)
        pred_columns, pred_rows = prediction_table(redact(read_jsonl(run_dir / PREDICTIONS_FILE)))
        run.log({"strategies": wandb.Table(columns=columns, data=rows),
                 "predictions": wandb.Table(columns=pred_columns, data=pred_rows)})
        views = view_files(run_dir)
        _log_images(run, run_dir, views)
        files = [run_dir / f for f in RUN_FILES if (run_dir / f).is_file()] + views
        metadata = {"model": cfg.model.name, "dataset": cfg.dataset.name, "strategies": list(results["strategies"]),
                    "n_predictions": len(pred_rows)}
        run.log_artifact(_artifact(f"evaluation-{run.id}", "evaluation", run_dir, files, metadata))
        log.info("W&B run %s: summary of %d strategies, %d predictions, %d plots/views", run.id,
                 len(rows), len(pred_rows), len(views))
        return run.id
    finally:
        run.finish()


def log_report(config: DictConfig, sweep_dir: str | Path) -> str | None:
    """Log a sweep's report (tables and plots) as a W&B run of job type ``report``, when the sweep used W&B."""
    node = wandb_node(config)
    if node is None:
        return None

    import wandb  # lazy: as above

    sweep_dir = Path(sweep_dir)
    config = copy.deepcopy(config)  # the report's run lives in the sweep dir, with job type "report"
    with open_dict(config):
        config.paths.output_dir = str(sweep_dir)
        config.task_name = "report"
        config.pop("hydra", None)  # the sweep's Hydra node does not resolve outside a job
    run = _open_run(config, wandb_node(config))
    try:
        table = sweep_dir / "report_long.csv"
        if table.is_file():
            with table.open() as handle:
                reader = csv.reader(handle)
                header = next(reader, [])
                run.log({"report": wandb.Table(columns=header, data=[[_number(v) for v in r] for r in reader],
                                  allow_mixed_types=True)})
        plots = sorted(sweep_dir.glob("*.png"))
        _log_images(run, sweep_dir, plots)
        files = [sweep_dir / f for f in REPORT_FILES if (sweep_dir / f).is_file()] + plots
        run.log_artifact(_artifact(f"report-{run.id}", "report", sweep_dir, files, {"sweep_dir": str(sweep_dir)}))
        return run.id
    finally:
        run.finish()
