"""Where a Deployment's pods run and how traffic finds them: the node and the Service.

    >>> from labsupport.k8s.deployment_node import DeploymentNode
    >>> DeploymentNode.endpoints.__doc__.split(":")[0]
    'Ready, non-terminating pods'

A mixin of `labsupport.k8s.deployment.Deployment`. Scheduling: a pending pod starts when its
GPUs fit on the node (`node_gpus`; terminating pods hold theirs until they have exited), else
it stays Pending with a FailedScheduling event. Endpoints hold ready, non-terminating pods; the
balancer learns a change only after `endpoint_propagation_seconds` (manifest seconds): in a
cluster the EndpointSlice update reaches kube-proxy and gateways seconds after the pod is marked
Terminating, which is why a preStop sleep exists. Set it to 0 for an ideal network.
"""

from __future__ import annotations

import time


class DeploymentNode:
    @property
    def endpoints(self) -> list[tuple[str, str, int]]:
        """Ready, non-terminating pods: the EndpointSlice (the balancer lags behind it)."""
        return [
            (p.name, "127.0.0.1", p.port)
            for p in list(self.pods)
            if p.ready and not p.terminating and p.spec.ports
        ]

    def _schedule(self) -> None:
        """Start pending pods that fit on the node (GPUs held by terminating pods count)."""
        used = sum(p.spec.gpus for p in self.pods if p.holds_node_resources)
        for p in self.pods:
            if p.scheduled or p.terminating:
                continue
            if self.node_gpus is not None and used + p.spec.gpus > self.node_gpus:
                if not any(e.reason == "FailedScheduling" for e in p.events):
                    p.emit(
                        "Warning",
                        "FailedScheduling",
                        f"0/1 nodes are available: 1 Insufficient nvidia.com/gpu "
                        f"(requested {p.spec.gpus}, free {self.node_gpus - used}). "
                        "preemption: 0/1 nodes are available: 1 No preemption victims "
                        "found for incoming pod.",
                        source="default-scheduler",
                    )
                continue
            used += p.spec.gpus
            p.start()

    def _route(self) -> None:
        """Publish endpoint changes to the balancer after the propagation delay."""
        now = time.monotonic()
        current = self.endpoints
        latest = self._pending_routes[-1][1] if self._pending_routes else self._published
        if current != latest:
            delay_s = self.timing.real_s(self.endpoint_propagation_seconds)
            self._pending_routes.append((now + delay_s, current))
            self.endpoint_history.append((time.time(), [n for n, _, _ in current]))
        while self._pending_routes and self._pending_routes[0][0] <= now:
            _, routes = self._pending_routes.pop(0)
            before = {n for n, _, _ in self._published}
            after = {n for n, _, _ in routes}
            self._published = routes
            if self.balancer:
                self.balancer.set_backends(routes)
            change = [f"+{n}" for n in sorted(after - before)] + [
                f"-{n}" for n in sorted(before - after)
            ]
            self._emit(
                "Normal",
                "EndpointsSynced",
                f"balancer routes to {len(routes)} endpoint(s) ({', '.join(change)})",
                kind="Service",
                source="kube-proxy",
            )
