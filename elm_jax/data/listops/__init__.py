"""ListOps: `synthetic` generates and parses expressions, `files` reads LRA's TSV files and
builds and caches the default, `tasks` serves both as datasets."""
