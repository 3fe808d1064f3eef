"""fedray's Hydra launcher (``hydra/launcher=fedray_ray``): runs a sweep's runs as Ray
tasks, several side by side on a cluster. See fedray_launcher.py."""
