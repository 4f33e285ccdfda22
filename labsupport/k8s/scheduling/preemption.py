"""DefaultPreemption: when no node fits, evict lower-priority pods if that makes one fit.

    >>> from labsupport.k8s.scheduling import Cluster, Node, Pod, Container
    >>> c = Cluster()
    >>> c.add_node(Node("n1", allocatable={"pods": 10, "nvidia.com/gpu": 1}))
    >>> gpu = {"nvidia.com/gpu": 1}
    >>> c.add_pod(Pod("low", containers=[Container("c", requests=gpu)], priority=-10,
    ...               node_name="n1"))
    >>> c.add_pod(Pod("high", containers=[Container("c", requests=gpu)], priority=1000))
    >>> c.schedule_pending()
    >>> [(e.name, e.reason) for e in c.events]
    [('low', 'Preempted'), ('high', 'FailedScheduling'), ('high', 'Scheduled')]

Follows pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go and
pkg/scheduler/framework/preemption/preemption.go: only nodes whose filter status is
`Unschedulable` are tried ("Preemption is not helpful for scheduling" for the others); on each,
every pod of strictly lower priority is removed, the filters run again, then pods are
reprieved from the most important down (higher priority, then earlier start) as long as the
pod still fits (`SelectVictimsOnNode`); "No preemption victims found for incoming pod" when no
pod has a lower priority. The node is picked as `pickOneNodeForPreemption` does: the lowest
highest-victim priority, the smallest sum of victim priorities (each raised by MaxInt32+1),
the fewest victims, the latest earliest start among the most important victims. The victims
are deleted (each gets its "Preempted" event) before the preemptor's FailedScheduling event is
recorded, as in a synchronous cycle.
Not modelled: PodDisruptionBudgets (no victim is protected by one), asynchronous preemption,
extenders.
"""

from __future__ import annotations

from labsupport.k8s.scheduling.plugins import UNRESOLVABLE, NodeInfo, Status, run_filters

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


def _importance(pod) -> tuple:
    """Sort key, most important first: higher priority, then the earlier start."""
    started = pod.started_at if pod.started_at is not None else pod.created_at
    return (-pod.priority, started)


def select_victims(pod, info: NodeInfo) -> tuple[list, Status]:
    """The fewest lower-priority pods on the node whose eviction lets `pod` fit."""
    potential = [p for p in info.pods if p.priority < pod.priority]
    if not potential:
        return [], Status(UNRESOLVABLE, (NO_VICTIMS,))
    remaining = [p for p in info.pods if p not in potential]
    status = run_filters(pod, NodeInfo(info.node, remaining))
    if not status.ok:
        return [], status
    victims = []
    for p in sorted(potential, key=_importance):
        if run_filters(pod, NodeInfo(info.node, [*remaining, p])).ok:
            remaining.append(p)  # reprieved
        else:
            victims.append(p)
    return victims, Status("Success")


def _pick(candidates: dict[str, list]) -> str:
    """pickOneNodeForPreemption: the lowest highest-victim priority, then the smallest sum of
    priorities each raised by MaxInt32+1 (so fewer victims win over fewer negative ones), then
    the fewest victims, then the latest earliest start among the highest-priority victims."""

    def key(name: str):
        victims = candidates[name]
        if not victims:
            return (float("-inf"), 0, 0, 0.0)
        top = max(v.priority for v in victims)
        earliest = min(
            (v.started_at if v.started_at is not None else v.created_at)
            for v in victims
            if v.priority == top
        )
        offset_sum = sum(v.priority + 2**31 for v in victims)
        return (top, offset_sum, len(victims), -earliest)

    return min(candidates, key=key)


def preempt(pod, infos: dict[str, NodeInfo], statuses: dict[str, Status]):
    """(node name, victims) to evict for `pod`, or (None, the preemption's own statuses)."""
    if pod.preemption_policy == "Never":
        return None, "not eligible due to preemptionPolicy=Never."
    out: dict[str, Status] = {}
    candidates: dict[str, list] = {}
    for name, info in infos.items():
        if statuses[name].code == UNRESOLVABLE:
            out[name] = Status(UNRESOLVABLE, (NOT_HELPFUL,))
            continue
        victims, status = select_victims(pod, info)
        if status.ok:
            candidates[name] = victims
        else:
            out[name] = status
    if not candidates:
        return None, out
    chosen = _pick(candidates)
    return chosen, candidates[chosen]
