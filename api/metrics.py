"""Prometheus metrics: request rate and latency by route template, jobs and items by state, queue depth and
generation time (observed from the event log by this process's hub)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from image2model.api.hub import EventHub
from image2model.api.store import JobStore
from image2model.core.models import Event, EventType


class Metrics:
    def __init__(self, store: JobStore, queue_depth: Callable[[], int], hub: EventHub) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "image2model_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "image2model_http_request_duration_seconds",
            "HTTP request latency (streams: their whole duration)",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
            registry=self.registry,
        )
        self.generation = Histogram(
            "image2model_generation_seconds",
            "Time from a worker claiming an item to its completion",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(store, queue_depth, hub))

    def observe_event(self, _job_id: str, event: Event) -> None:
        if event.type == EventType.FILE_UPDATE and event.data.get("duration_ms") is not None:
            self.generation.observe(event.data["duration_ms"] / 1000)


class _StoreCollector(Collector):
    def __init__(self, store: JobStore, queue_depth: Callable[[], int], hub: EventHub) -> None:
        self.store, self.queue_depth, self.hub = store, queue_depth, hub

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        counts = self.store.counts()
        jobs = GaugeMetricFamily("image2model_jobs", "Jobs in the store by status", labels=["status"])
        for status, n in counts["jobs"].items():
            jobs.add_metric([status], n)
        items = GaugeMetricFamily("image2model_items", "Items (uploaded images) by status", labels=["status"])
        for status, n in counts["items"].items():
            items.add_metric([status], n)
        yield jobs
        yield items
        yield GaugeMetricFamily(
            "image2model_queue_depth", "Tasks waiting in the queue", value=self.queue_depth()
        )
        yield GaugeMetricFamily(
            "image2model_stream_subscribers", "Open event streams", value=self.hub.subscribers
        )
        deliveries = CounterMetricFamily(
            "image2model_stream_deliveries",
            "Live event chunks delivered to streams: written by the hub to an idle connection (direct) or "
            "handed to the stream's task (stream)",
            labels=["path"],
        )
        for path, n in self.hub.deliveries.items():
            deliveries.add_metric([path], n)
        yield deliveries


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task overhead) labelling by the matched route's template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
