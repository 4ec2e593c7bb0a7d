"""Reference implementation of the machine-unlearning competition."""

__version__ = "0.1.0"
