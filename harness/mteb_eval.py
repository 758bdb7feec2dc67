"""A second opinion: a checkpoint evaluated on MTEB retrieval tasks by MTEB's own evaluator.

The harness's numbers come from its own metrics (held to trec_eval); this runs the same model
through ``mteb.evaluate`` so a reader can check them against MTEB's leaderboard (MTEB publishes
nDCG@10 = 64.51 for all-MiniLM-L6-v2 on SciFact). The checkpoint is loaded as a
``SentenceTransformer``; its query and passage prefixes travel as the prompts ``query`` and
``document`` that MTEB passes for retrieval. MTEB downloads its tasks' data from the Hugging Face
Hub, so this needs a network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.io import write_json
from harness.models.registry import packaged_minilm_path


def run_mteb(model: str, tasks: list[str], out: Path, batch_size: int = 128) -> dict[str, Any]:
    """Evaluate ``model`` (a checkpoint folder, ``minilm`` or a hub id) on ``tasks``; write ``out``."""
    import mteb
    from sentence_transformers import SentenceTransformer

    try:
        selected = mteb.get_tasks(tasks=tasks)
    except KeyError as exc:
        raise ConfigError(f"unknown MTEB task: {exc.args[0]}", key="mteb.tasks") from None
    not_retrieval = [t.metadata.name for t in selected if t.metadata.type != "Retrieval"]
    if not_retrieval:
        raise ConfigError(f"not retrieval tasks: {not_retrieval}", key="mteb.tasks")
    encoder = SentenceTransformer(str(packaged_minilm_path()) if model == "minilm" else model)
    result = mteb.evaluate(encoder, selected, encode_kwargs={"batch_size": batch_size}, cache=None,
                           show_progress_bar=False)
    main = {t.metadata.name: t.metadata.main_score for t in selected}
    record = {"model": model, "mteb": mteb.__version__,
              "scores": {r.task_name: {"metric": main[r.task_name], "value": r.get_score()} for r in result.task_results}}
    write_json(out, record)
    return record
