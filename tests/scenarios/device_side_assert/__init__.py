"""Lab 285's workload: traffic, the deployed server's additions, reruns, liveness trials."""
