"""Pathfinder and Path-X: `synthetic` generates the Pathfinder-style images, `files` reads the
LRA release and builds and caches generated sets, `tasks` serves them as datasets."""
