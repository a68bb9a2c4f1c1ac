"""Tools run beside the app (not imported by it): `python -m scripts.replicas` (N replicas behind nginx),
`scripts.student` (simulated students for the capacity benchmark and the replica tests), and the shell scripts."""
