"""The model service (issue 6): `mlops-assets serve`.

Modules:
  model_holder   loads a registry model pinned by version hash (core.pinned_model), holds
                 the served model behind one reference (atomic hot swap) and watches
                 registry/production.json;
  records        ISO 8601 timestamp parsing shared by validation and fast_path;
  validation     request records against the dataset contract (422 naming field and record);
  fast_path      the per-request scoring path without pandas/Pipeline overhead, checked
                 bit-identical to build_features + core.train.score at every model load;
  (the inference log format and reader live in core.monitoring.inference_log);
  metrics        Prometheus metrics of one app instance;
  app            the FastAPI application (`create_app`).
No dagster import here.
"""
