"""The lab: the in-process demo and the benchmarks, built on the core and the relay."""
