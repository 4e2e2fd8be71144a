"""Model serving: deployments, replicas' batchers (dynamic and continuous) and the router."""
