"""Playback copies from the queue, top to bottom: claim → fetch and verify the
original → probe → copy (ffmpeg) → store → seal lineage → commit.

The pipeline queues one ``Derivative`` row per sealed original; this package
consumes them with a bounded pool of threads (``transcode.workers``). Every
step only *reads* the original: it is fetched from the store by its exact
version into a work folder and its SHA-256 checked against the catalog before
ffmpeg sees it, so a copy is never made from unverified bytes (invariant 3).

Where each concern lives:

* :mod:`ingest.playback.claims` – the queue and its lease (claiming work,
  renewing it, every state a claimed row moves on to);
* :mod:`ingest.playback.making` – making the copy (fetch, probe, remux or
  transcode, store, lineage manifest);
* :mod:`ingest.playback.locks` – aligning the copy's lock with the original's;
* :mod:`ingest.playback.worker` – the pool of threads;
* :mod:`ingest.playback.attempt` – the claim, result and exceptions they share;
* what ``status`` and ``show`` print of copies: :mod:`verify.documents`.

Outcomes: ``stored`` (copy and lineage manifest in the store, one
``derivative_stored`` event), ``skipped`` (the policy says no copy, e.g. a
still: one ``derivative_skipped`` event), ``retrying`` (a retryable failure:
time-out, killed, store down; due again after a doubling delay) or ``failed``
(ffmpeg's or ffprobe's own last words in ``last_error``).
"""

from ingest.playback.attempt import Claim, Observer, Result
from ingest.playback.worker import PlaybackWorker

__all__ = ["Claim", "Observer", "PlaybackWorker", "Result"]
