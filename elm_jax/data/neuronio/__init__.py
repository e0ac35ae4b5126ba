"""NeuronIO: `files` reads and writes the simulation files, `tasks` holds the NeuronIO dataset
class, `synthetic` the NEURON simulator of the default and `default` builds and caches it."""
