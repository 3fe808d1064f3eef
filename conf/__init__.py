"""Hydra config groups, shipped inside the package as fedray.conf (a link to conf/)."""
