"""Enwik8 and its stand-in: `tasks` holds the byte dataset class, `files` reads the real
Enwik8, `default` fetches and caches the embedded enwiki-sample and `stream` cuts contiguous
training streams for a language model that carries its state."""
