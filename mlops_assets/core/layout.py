"""Every artifact path of the project, once, relative to the project root.

`dvc.yaml` names the same files as stage outs; `mlops_assets_tests/core/test_layout.py`
fails if the two disagree. Anything that needs a path imports it from here."""

from __future__ import annotations

# --- the chain's DVC outputs (dvc.yaml outs, metrics and plots)
DATA = "data"
LANDING = "data/landing"  # default of params dataset.landing_dir
SNAPSHOTS = "data/snapshots"
MANIFEST = "data/snapshots/manifest.json"
VALIDATED = "data/validated/dataset.parquet"
VALIDATION_REPORT = "data/reports/validation.json"
FEATURES = "data/features/features.parquet"
FEATURE_META = "data/features/feature_meta.json"
TRAIN = "data/split/train.parquet"
HOLDOUT = "data/split/holdout.parquet"
SPLIT_SUMMARY = "data/split/split.json"
MODEL = "data/model/model.skops"
MODEL_RECORD = "data/model/model.json"
REFERENCE_PROFILE = "data/model/reference_profile.json"
REFERENCE_VALUES = "data/model/reference_profile.parquet"
EVALUATION = "data/reports/evaluation.json"
PLOTS = "data/reports/plots"
DRIFT_JSON = "data/reports/drift.json"
DRIFT_HTML = "data/reports/drift.html"

# --- beside the chain, not DVC stage outputs
VALIDATION_FAILED = "data/reports/validation_failed.json"  # the last rejection (git-ignored)
RUNS_DIR = "data/runs"  # run facts: wall-clock times, git sha (never inside a DVC output)
INFERENCE_LOG = "data/inference_log"  # the service's append-only log
LABELS = "data/labels"  # delayed label files
MONITORING = "data/monitoring"  # live monitoring outputs
# run-scoped params (a retrain's window, Launchpad hyperparameters): machine-written,
# git-ignored, pinned by DVC as a second params file of the split and train stages
RUN_PARAMS = "data/run_params.yaml"

# --- the model registry (git-tracked pointer, DVC-tracked model files and audit log)
REGISTRY_DIR = "registry"
REGISTRY_INDEX = "registry/registry.json"
PRODUCTION_POINTER = "registry/production.json"
AUDIT_LOG = "registry/audit.log.jsonl"
REGISTRY_MODELS = "registry/models"  # one folder per version: the files below
MODEL_FILE = "model.skops"
RECORD_FILE = "model.json"
PROFILE_FILES = ("reference_profile.json", "reference_profile.parquet")

# --- the stage outputs a DVC stage owns that the code addresses directly
STAGE_OUTS: dict[str, tuple[str, ...]] = {
    "landing": (LANDING,),
    "snapshot": (SNAPSHOTS,),
    "validate": (VALIDATED, VALIDATION_REPORT),
    "features": (FEATURES, FEATURE_META),
    "split": (TRAIN, HOLDOUT, SPLIT_SUMMARY),
    "train": (MODEL, MODEL_RECORD, REFERENCE_PROFILE, REFERENCE_VALUES),
    "evaluate": (EVALUATION, PLOTS),
    "drift": (DRIFT_JSON, DRIFT_HTML),
}


def registry_model_dir(version: str) -> str:
    """The registry folder of one model version."""
    return f"{REGISTRY_MODELS}/{version}"


def registry_evaluation_file(version: str, md5: str) -> str:
    """The registry's copy of an evaluation a version was registered with, named by its md5
    (content-addressed: a later evaluation of the same model is another file)."""
    return f"{registry_model_dir(version)}/evaluations/{md5}.json"
