"""Health probes for the model server: which probe sees which fault, and probes that see them all.

    >>> from labsupport.serving.scrape import Scrape
    >>> Scrape.from_text("vllm:num_requests_waiting 3.0").value("vllm:num_requests_waiting")
    3.0

Modules, one concern each: `scrape` (a /metrics scrape with a hard deadline, as a prober takes
it), `load` (steady background traffic that runs until stopped), `probesets` (the probes of the
incident, of the classic answer and of the learner, as Kubernetes probe specs), `matrix` (every
probe against every fault on a live server: the diagnosis table), `scenarios` (the same faults
against a supervised pod whose probes act: restarts, readiness, detection times), `timeline`
(what a pod's probes did, and the verdict of each scenario), `verify` (before and after in one
run), `plots`.
Importing this package imports none of them.
"""
