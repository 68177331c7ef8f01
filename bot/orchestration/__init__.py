"""The orchestration: what the worker does with each job.

``coordinator`` holds the use cases that drive a run (start, run a step, move, cancel, run a
stage again, reconcile); ``steps`` runs one stage agent; ``projector`` is the one writer of
the status comment and the check runs; ``handlers`` turn each typed job into use cases;
``context`` is the one context a job acts with.
"""
