"""Prometheus metrics of one service instance (its own CollectorRegistry, so several apps in
one process, e.g. in tests, do not collide).

  mlops_serve_requests_total{endpoint, status, model_version}
  mlops_serve_request_latency_seconds{endpoint, model_version}     histogram
  mlops_serve_records_scored_total{model_version, served_by}
  mlops_serve_validation_failures_total{field, check}              one per offending value
  mlops_serve_score{model_version}                                 histogram (0..1)
  mlops_serve_model_info{version, role}                            1 for the served model(s)
  mlops_serve_model_swaps_total, mlops_serve_model_reload_failures_total
  mlops_serve_inference_log_{segments,records}_written_total, _dropped_total, _buffered
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(np.round(np.concatenate([[0.001, 0.005, 0.01, 0.02, 0.05],
                                               np.arange(0.1, 1.0, 0.1)]), 3))


class ScoreHistogram(Collector):
    """A score histogram per model version, observed a whole batch at a time with numpy
    (prometheus_client's Histogram.observe is one Python call per value)."""

    def __init__(self, name: str, doc: str, buckets: tuple[float, ...]) -> None:
        self.name, self.doc = name, doc
        self.edges = np.asarray(buckets, dtype=np.float64)
        self._lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}
        self._sums: dict[str, float] = {}

    def observe_many(self, version: str, scores: np.ndarray) -> None:
        idx = np.searchsorted(self.edges, scores, side="left")  # value <= edge[idx]
        counts = np.bincount(idx, minlength=len(self.edges) + 1)
        with self._lock:
            if version not in self._counts:
                self._counts[version] = np.zeros(len(self.edges) + 1, dtype=np.int64)
                self._sums[version] = 0.0
            self._counts[version] += counts
            self._sums[version] += float(np.sum(scores))

    def collect(self) -> Iterator[HistogramMetricFamily]:
        fam = HistogramMetricFamily(self.name, self.doc, labels=["model_version"])
        with self._lock:
            for version, counts in self._counts.items():
                cum = np.cumsum(counts)
                buckets = [(repr(float(e)), float(c)) for e, c in zip(self.edges, cum[:-1],
                                                                      strict=True)]
                buckets.append(("+Inf", float(cum[-1])))
                fam.add_metric([version], buckets, self._sums[version])
        yield fam


class ServeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mlops_serve_requests", "HTTP requests by endpoint, status "
                                "and the model version that answered",
                                ["endpoint", "status", "model_version"], registry=r)
        self.latency = Histogram("mlops_serve_request_latency_seconds",
                                 "Request latency by endpoint and model version",
                                 ["endpoint", "model_version"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.records = Counter("mlops_serve_records_scored", "Records scored",
                               ["model_version", "served_by"], registry=r)
        self.validation_failures = Counter("mlops_serve_validation_failures",
                                           "Rejected values by field and check",
                                           ["field", "check"], registry=r)
        self.scores = ScoreHistogram("mlops_serve_score", "Distribution of served scores",
                                     SCORE_BUCKETS)
        r.register(self.scores)
        self.model_info = Gauge("mlops_serve_model_info", "The served model version(s)",
                                ["version", "role"], registry=r)
        self.swaps = Counter("mlops_serve_model_swaps", "Hot swaps of the production model",
                             registry=r)
        self.reload_failures = Counter("mlops_serve_model_reload_failures",
                                       "Registry changes that could not be loaded", registry=r)
        self.log_segments = Counter("mlops_serve_inference_log_segments_written",
                                    "Inference-log segment files written", registry=r)
        self.log_records = Counter("mlops_serve_inference_log_records_written",
                                   "Inference-log records written", registry=r)
        self.log_dropped = Counter("mlops_serve_inference_log_records_dropped",
                                   "Inference-log records dropped (buffer bound, disk failure)",
                                   registry=r)

    def set_model(self, version: str, role: str = "production",
                  previous: str | None = None) -> None:
        if previous is not None:
            try:
                self.model_info.remove(previous, role)
            except KeyError:
                pass
        self.model_info.labels(version, role).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
