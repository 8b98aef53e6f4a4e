"""Dask clients for otviz's parallel jobs: a LocalCluster of single-threaded worker processes,
or an existing scheduler (``--scheduler tcp://host:8786``)."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        if workers < 1:
            raise ValueError(f"--workers must be ≥ 1, got {workers}")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
