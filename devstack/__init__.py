"""The embedded local stack: a real Kafka broker and a real Kubernetes control plane.

Everything is built or downloaded from package registries (Maven Central, the Go module
proxy), cached by version outside the repository, and run on loopback as plain processes.
``srs dev up | down | status`` drives it; see :mod:`devstack.stack`.
"""
