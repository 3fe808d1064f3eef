"""Everything that talks to Ray: the session (session.py), the warm worker pool
(pool.py) and the actors (actors.py, which imports torch: import it directly)."""
