"""SHD and SHD-Adding: `files` reads and writes SHD-format HDF5 and bins spikes, `tasks` holds
the SHD / SHD-Adding dataset classes, `synthetic` the espeak-ng generator of the embedded
default and `default` builds and caches that default."""
