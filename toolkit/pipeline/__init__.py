"""The papermill pipeline: run settings, notebook execution, stage glue and the report."""

from .execute import STAGES, PipelineResult, notebooks_dir, record_stage, run_pipeline
from .settings import RunSettings, apply_overrides, load_run_settings

__all__ = ["STAGES", "PipelineResult", "RunSettings", "apply_overrides", "load_run_settings", "notebooks_dir",
           "record_stage", "run_pipeline"]
