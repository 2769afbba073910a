"""Backends of the KV layer, one module each; ``open_kv`` picks one from a URL."""
