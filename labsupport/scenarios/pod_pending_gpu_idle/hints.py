"""Lab 282's hints, from a nudge to the mechanism (`hint("282", level, exercise)`)."""

HINTS = {
    "diagnose": (
        "The FailedScheduling message counts nodes per reason, and the same reason can have "
        "different causes. For every node the scheduler turned down, read what the node says "
        "about itself (kubectl describe node) beside what the pod asks for.",
        "Compare, node by node: the resource names and amounts under Capacity and Allocatable, "
        "the taints against the pod's tolerations, the labels against its nodeSelector, and "
        "who holds the GPUs under Non-terminated Pods (and what DCGM says they do with them).",
        "Capacity above Allocatable for a device is the device plugin saying a device is "
        "unhealthy (DCGM shows its XID); nvidia.com/gpu at 0 beside nvidia.com/mig-* is a MIG "
        "node; a pod of priority 0 holding GPUs at 0% is idle; a taint or label that differs "
        "from the manifest by a character is a typo. Name the object that proves it.",
    ),
    "fixed_manifest": (
        "Change only what the cause needs: the same image, replicas and number of devices, a "
        "manifest that the API server accepts, and no other team's pods evicted.",
        "Each cause has its own lever in the pod template: priorityClassName (what may "
        "preempt what), tolerations, nodeSelector values, the resource name under limits, or "
        "the burst pool while a node waits for repair.",
        "An idle low-priority pod: give the serving pod its llm-serving priority class so "
        "the scheduler preempts exactly that pod. A taint: tolerate its exact key, value and "
        "effect. MIG: ask for the MIG profile the nodes advertise. A typo: copy the label. "
        "An unhealthy device: nodeSelector pool=burst and tolerate pool=burst:NoSchedule.",
    ),
}
